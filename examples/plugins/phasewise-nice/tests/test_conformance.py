"""phasewise's behavioural suite, run against the ``nice`` executor: every test of
``phasewise.testing.conformance``, imported here, runs on the executor this fixture gives."""

from __future__ import annotations

import pytest
from phasewise_nice.plugin import nice

from phasewise.testing import ExecutorUnderTest
from phasewise.testing.conformance import *  # noqa: F403


@pytest.fixture
def phasewise_executor() -> ExecutorUnderTest:
    return ExecutorUnderTest("nice", nice)
