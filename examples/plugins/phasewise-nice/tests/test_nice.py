"""A phase on ``nice`` really runs at the niceness and on the CPUs asked for, and bad
options are refused before anything runs."""

from __future__ import annotations

import os

import pytest
from phasewise_nice.executor import parse_cpus
from phasewise_nice.plugin import nice

from phasewise import Phase, Pipeline
from phasewise.core.errors import ExecutorOptionsError


def where_am_i() -> tuple[int, list[int]]:
    return os.getpriority(os.PRIO_PROCESS, 0), sorted(os.sched_getaffinity(0))


def test_a_phase_runs_niced_and_pinned() -> None:
    cpu = min(os.sched_getaffinity(0))
    result = Pipeline("p", Phase("where", where_am_i)).run(
        executor="nice", executors=lambda name: nice, max_workers=1,
        executor_options={"nice": 5, "cpus": cpu})
    assert result.ok, result.state.phase("where").error
    niceness = min(19, os.getpriority(os.PRIO_PROCESS, 0) + 5)
    assert result.results["where"] == (niceness, [cpu])


def test_cpus_are_parsed_and_checked() -> None:
    cpu = min(os.sched_getaffinity(0))
    assert parse_cpus(None) is None
    assert parse_cpus(cpu) == {cpu}
    assert parse_cpus(f"{cpu},{cpu}-{cpu}") == {cpu}
    with pytest.raises(ValueError, match="not available here"):
        parse_cpus(10_000)


@pytest.mark.parametrize("options", [{"nice": -1}, {"nice": "high"}, {"cpus": "two"},
                                     {"colour": "red"}])
def test_bad_options_are_refused_before_anything_runs(options: dict[str, object]) -> None:
    with pytest.raises(ExecutorOptionsError):
        Pipeline("p", Phase("where", where_am_i)).run(
            executor="nice", executors=lambda name: nice, executor_options=options)
