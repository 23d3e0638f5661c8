"""One behavioural suite, run against every executor the plugin registry knows: the
conformance suite phasewise ships for plugin authors (``phasewise.testing.conformance``),
imported here and parametrized over the registry.

Executors registered later (by this package or an installed plugin) join for free: the
parameter list is read from the registry at collection time. The handlers live in
``phasewise.testing.handlers`` and cross a process boundary by reference, as a user's
handlers in a test module do.
"""

from __future__ import annotations

from functools import partial

import pytest

from phasewise import Phase, Pipeline
from phasewise.plugins.manager import executor_registry
from phasewise.testing import ExecutorUnderTest, conformance
from phasewise.testing.conformance import *  # noqa: F403
from phasewise.testing.handlers import const

EXECUTORS = [name for name in executor_registry().names() if name != "dask"]
"""dask runs the suite in test_dask.py, on a real cluster started once for the session."""
BUILT_IN = {"inline", "thread", "process", "subprocess"}


@pytest.fixture(params=EXECUTORS)
def phasewise_executor(request: pytest.FixtureRequest) -> ExecutorUnderTest:
    return ExecutorUnderTest(request.param)


def test_the_suite_covers_the_built_in_executors() -> None:
    assert set(EXECUTORS) >= BUILT_IN


def test_the_suite_runs_every_shipped_test_over_every_executor(
    request: pytest.FixtureRequest,
) -> None:
    shipped = {name for name in conformance.__all__ if name.startswith("test_")}
    here = {name for name in dir(request.module) if name.startswith("test_")}
    assert shipped <= here
    items = [item for item in request.session.items
             if item.module is request.module and item.originalname in shipped]
    if {item.originalname for item in items} != shipped:
        pytest.skip("only part of the suite was collected (-k, a node id)")
    covered = {item.callspec.params["phasewise_executor"] for item in items
               if hasattr(item, "callspec")}
    assert covered >= BUILT_IN


def test_recording_store_sees_the_run(recording_store) -> None:
    pipeline = Pipeline("rec", Phase("a", partial(const, 1)))
    store, actions = recording_store(pipeline)
    pipeline.run(executor="inline", store=store)
    assert [a.type for a in actions] == [
        "@@INIT", "@@PIPELINE_START", "@@PHASE_START", "@@PHASE_COMPLETE",
        "@@PIPELINE_COMPLETE"]
    assert actions[3].payload["result"] == 1
    replayed = None  # the recorded actions, reduced again, give the Store's state
    for action in actions:
        replayed = pipeline.build_reducer()(replayed, action)
    assert replayed == store.state
