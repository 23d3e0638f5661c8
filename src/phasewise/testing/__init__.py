"""phasewise.testing: the behavioural conformance suite every executor must pass, shipped
so that a plugin author runs it against theirs (it needs pytest).

The suite is ``phasewise.testing.conformance``: pipelines run end to end on the executor
under test — scheduling, context, policies, timeouts, cancellation, captured output,
large results. Two ways to run it:

* in your test suite: import the tests, and say which executor they run on by
  overriding the ``phasewise_executor`` fixture (a name of an installed executor, or an
  ``ExecutorUnderTest`` with the factory itself, needing no plugin registration)::

      # tests/test_conformance.py
      import pytest
      from phasewise.testing import ExecutorUnderTest
      from phasewise.testing.conformance import *  # noqa: F403

      @pytest.fixture
      def phasewise_executor():
          return ExecutorUnderTest("ray", RayExecutor)

* from the command line, against an installed executor, with this plugin::

      pytest -p phasewise.testing --pyargs phasewise.testing.conformance \
          --phasewise-executor ray

The handlers live in ``phasewise.testing.handlers``, an importable module, so they cross
process boundaries by reference, as a user's handlers do.
"""

from __future__ import annotations

from phasewise.testing.plugin import pytest_addoption, pytest_generate_tests
from phasewise.testing.target import ExecutorUnderTest

__all__ = ["ExecutorUnderTest", "pytest_addoption", "pytest_generate_tests"]
