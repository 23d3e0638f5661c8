"""What a third-party executor builds on, made public for phasewise-nice: the process
pool's ``initializer``, run in every worker as it starts, whatever the start method."""

from __future__ import annotations

import os

import pytest

from phasewise import Phase, Pipeline
from phasewise.executors import ProcessExecutor

pytestmark = pytest.mark.timeout(60)


def mark_worker(value: str) -> None:
    os.environ["PHASEWISE_TEST_INITIALIZED"] = value


def initialized() -> tuple[str | None, int]:
    return os.environ.get("PHASEWISE_TEST_INITIALIZED"), os.getpid()


@pytest.mark.parametrize("start_method", ["auto", "fork", "forkserver"])
def test_the_initializer_runs_in_every_worker_before_its_tasks(start_method: str) -> None:
    def pool(max_workers: int | None = None) -> ProcessExecutor:
        return ProcessExecutor(max_workers, start_method=start_method,
                               initializer=mark_worker, initargs=(start_method,))

    pipeline = Pipeline("p", *(Phase(f"p{i}", initialized) for i in range(4)), parallel=True)
    result = pipeline.run(executor="pool", executors=lambda name: pool, max_workers=2)
    assert result.ok, result.state
    assert {value for value, _ in result.results.values()} == {start_method}
    assert os.getpid() not in {pid for _, pid in result.results.values()}
    assert "PHASEWISE_TEST_INITIALIZED" not in os.environ


def test_without_an_initializer_nothing_runs() -> None:
    executor = ProcessExecutor(1)
    try:
        assert executor.initializer is None and executor.initargs == ()
    finally:
        executor.shutdown()
