"""Phase, PhasePolicy, Pipeline (>>) and PipelineResult."""

from __future__ import annotations

import dataclasses
import functools

import pytest

from phasewise import (
    Phase,
    PhasePolicy,
    PhasewiseError,
    Pipeline,
    PipelineError,
    PipelineResult,
)
from phasewise.core.errors import PipelineFailed


def noop() -> None:
    return None


def with_context(context):
    return context


# ── PhasePolicy ─────────────────────────────────────────────────────────────


def test_policy_defaults() -> None:
    policy = PhasePolicy()
    assert (policy.on_fail, policy.max_retries, policy.retry_delay, policy.retry_backoff) == (
        "stop", 0, 1.0, "fixed",
    )


@pytest.mark.parametrize("on_fail", ["stop", "skip", "retry"])
def test_policy_accepts_every_on_fail(on_fail: str) -> None:
    assert PhasePolicy(on_fail=on_fail).on_fail == on_fail


def test_bad_on_fail_raises_value_error_listing_the_choices() -> None:
    with pytest.raises(ValueError, match="on_fail must be one of") as info:
        PhasePolicy(on_fail="explode")
    for choice in ("stop", "skip", "retry"):
        assert choice in str(info.value)


def test_bad_backoff_raises_value_error() -> None:
    with pytest.raises(ValueError, match="retry_backoff must be one of"):
        PhasePolicy(retry_backoff="linear")


@pytest.mark.parametrize("kwargs", [{"max_retries": -1}, {"retry_delay": -0.5}])
def test_negative_numbers_are_rejected(kwargs) -> None:
    with pytest.raises(ValueError):
        PhasePolicy(on_fail="retry", **kwargs)


def test_policy_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        PhasePolicy().on_fail = "skip"  # type: ignore[misc]


def test_fixed_delay_is_constant() -> None:
    policy = PhasePolicy(on_fail="retry", max_retries=5, retry_delay=0.25)
    assert [policy.delay_for(a) for a in range(1, 6)] == [0.25] * 5


def test_exponential_delay_doubles_and_is_capped_at_30_seconds() -> None:
    policy = PhasePolicy(on_fail="retry", max_retries=9, retry_delay=1.0,
                         retry_backoff="exponential")
    assert [policy.delay_for(a) for a in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
    big = PhasePolicy(on_fail="retry", retry_delay=50, retry_backoff="exponential")
    assert big.delay_for(1) == 30


# ── Phase ───────────────────────────────────────────────────────────────────


def test_phase_defaults() -> None:
    phase = Phase("p", noop)
    assert phase.description == ""
    assert phase.depends_on == ()
    assert phase.parallel is None  # inherits the pipeline's, which defaults to False
    assert Pipeline("x", phase).phases[0].parallel is False
    assert phase.weight == 1
    assert phase.policy == PhasePolicy()
    assert phase.max_logs == 200
    assert phase.executor is None
    assert phase.timeout is None


def test_depends_on_string_becomes_a_tuple() -> None:
    assert Phase("b", noop, depends_on="a").depends_on == ("a",)
    assert Phase("c", noop, depends_on=["a", "b"]).depends_on == ("a", "b")


def test_phase_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Phase("p", noop).name = "q"  # type: ignore[misc]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": ""},
        {"handler": "not callable"},
        {"weight": -1},
        {"max_logs": -1},
        {"timeout": 0},
        {"timeout": -3},
        {"policy": "stop"},
    ],
)
def test_bad_phase_arguments_are_phasewise_errors(kwargs) -> None:
    args = {"name": "p", "handler": noop, **kwargs}
    with pytest.raises((PhasewiseError, ValueError)):
        Phase(**args)


def test_resources_are_a_mapping_of_names_to_numbers_kept_as_given() -> None:
    assert Phase("p", noop).resources is None
    phase = Phase("p", noop, resources={"GPU": 1, "memory": 8e9})
    assert phase.resources == {"GPU": 1, "memory": 8e9}


@pytest.mark.parametrize(
    ("resources", "says"),
    [
        ("GPU", "resources must be a mapping"),
        ({"GPU": "one"}, "resource 'GPU' must be a number >= 0"),
        ({"GPU": -1}, "resource 'GPU' must be a number >= 0"),
        ({"GPU": True}, "resource 'GPU' must be a number >= 0"),
        ({"GPU": float("nan")}, "resource 'GPU' must be a number >= 0"),
        ({1: 1}, "a resource name must be a non-empty string"),
    ],
)
def test_bad_resources_are_a_pipeline_error_naming_the_phase(resources, says) -> None:
    with pytest.raises(PipelineError, match=f"phase 'p': {says}"):
        Phase("p", noop, resources=resources)


def test_wants_context_follows_the_parameter_name() -> None:
    assert Phase("a", with_context).wants_context
    assert not Phase("a", noop).wants_context
    assert Phase("a", lambda context: 1).wants_context
    assert Phase("a", functools.partial(lambda x, context: x, 1)).wants_context
    assert not Phase("a", functools.partial(lambda x: x, 1)).wants_context


# ── Pipeline ────────────────────────────────────────────────────────────────


def test_rshift_returns_a_new_pipeline_and_leaves_the_old_one_unchanged() -> None:
    base = Pipeline("p", Phase("a", noop), capture_output=True, fail_fast=True)
    bigger = base >> Phase("b", noop, depends_on="a")
    assert bigger is not base
    assert [p.name for p in base.phases] == ["a"]
    assert [p.name for p in bigger.phases] == ["a", "b"]
    assert bigger.name == "p"
    assert bigger.capture_output is True
    assert bigger.fail_fast is True
    chained = base >> Phase("x", noop) >> Phase("y", noop, depends_on="x")
    assert [p.name for p in chained.phases] == ["a", "x", "y"]


def test_rshift_validates_the_new_pipeline() -> None:
    base = Pipeline("p", Phase("a", noop))
    with pytest.raises(PipelineError, match="Available phases"):
        base >> Phase("b", noop, depends_on="missing")


def test_rshift_with_a_non_phase_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        Pipeline("p") >> 42  # type: ignore[operator]


def test_pipeline_rejects_non_phases() -> None:
    with pytest.raises(PipelineError):
        Pipeline("p", "not a phase")  # type: ignore[arg-type]


def test_pipeline_name_must_come_first() -> None:
    # Pipeline([...]) would otherwise be an empty pipeline named by a list
    with pytest.raises(PipelineError, match="name must be a string"):
        Pipeline([Phase("a", lambda: None)])  # type: ignore[arg-type]


def test_pipeline_defaults() -> None:
    pipeline = Pipeline("p")
    assert pipeline.capture_output is False
    assert pipeline.fail_fast is False
    assert pipeline.phases == ()


@pytest.mark.parametrize("bad", [0, -1, 1.5])
def test_run_rejects_bad_max_workers(bad) -> None:
    with pytest.raises(ValueError):
        Pipeline("p", Phase("a", noop)).run(executor="inline", max_workers=bad)


# ── PipelineResult ──────────────────────────────────────────────────────────


def boom():
    raise ValueError("boom")


def test_completed_result() -> None:
    result = Pipeline("ok", Phase("a", lambda: 1), Phase("b", with_context, depends_on="a")
                      ).run(executor="inline")
    assert isinstance(result, PipelineResult)
    assert result.status == "completed"
    assert result.ok is True
    assert result.results == {"a": 1, "b": {"a": 1}}
    assert result.counts == {"completed": 2}
    assert result.state.status == "completed"
    assert result.raise_for_status() is result


def test_failed_result_and_raise_for_status_names_the_failed_phases() -> None:
    result = Pipeline(
        "bad", Phase("good", noop), Phase("broken", boom, depends_on="good"),
        Phase("after", noop, depends_on="broken"),
    ).run(executor="inline")
    assert result.status == "failed"
    assert result.ok is False
    assert result.counts == {"completed": 1, "failed": 1, "cancelled": 1}
    assert result.results == {"good": None}
    with pytest.raises(PipelineFailed) as info:
        result.raise_for_status()
    assert isinstance(info.value, PipelineError)
    assert isinstance(info.value, PhasewiseError)
    assert "broken" in str(info.value)
    assert "ValueError: boom" in str(info.value)
    assert "broken" in info.value.failures
    assert info.value.pipeline == "bad"
