"""The pytest plugin of ``phasewise.testing``: ``--phasewise-executor NAME`` runs the
conformance suite against the installed executor ``NAME``::

    pytest -p phasewise.testing --pyargs phasewise.testing.conformance \
        --phasewise-executor ray
"""

from __future__ import annotations

from typing import Any

from phasewise.testing.target import ExecutorUnderTest

__all__ = ["pytest_addoption", "pytest_generate_tests"]


def pytest_addoption(parser: Any) -> None:
    group = parser.getgroup("phasewise", "phasewise executor conformance")
    group.addoption(
        "--phasewise-executor", action="append", default=[], metavar="NAME",
        dest="phasewise_executors",
        help="run phasewise.testing.conformance against the installed executor NAME "
             "(repeatable)")
    group.addoption(
        "--phasewise-runs-inside-submit", action="store_true",
        dest="phasewise_runs_inside_submit",
        help="the executors given run each task inside submit(), one at a time: skip "
             "the tests that need two phases at once")


def pytest_generate_tests(metafunc: Any) -> None:
    """Parametrize the suite's ``phasewise_executor`` fixture with the executors given."""
    names = metafunc.config.getoption("phasewise_executors", default=[])
    if not names or "phasewise_executor" not in metafunc.fixturenames:
        return
    inside = metafunc.config.getoption("phasewise_runs_inside_submit", default=False) or None
    metafunc.parametrize(
        "phasewise_executor",
        [ExecutorUnderTest(name, runs_inside_submit=inside) for name in names],
        ids=names, indirect=True)
