"""PhaseContext: a read-only mapping of a phase's dependency results, with a KeyError that
says what to do."""

from __future__ import annotations

import pickle

import pytest

from phasewise import Phase, Pipeline
from phasewise.core.context import MissingDependency, PhaseContext


def test_a_context_reads_like_the_dict_it_holds() -> None:
    context = PhaseContext("report", {"a": 1, "b": None})
    assert context["a"] == 1
    assert context["b"] is None
    assert dict(context) == {"a": 1, "b": None}
    assert context == {"a": 1, "b": None}
    assert list(context) == ["a", "b"]
    assert len(context) == 2
    assert "a" in context and "c" not in context
    assert context.get("c", "default") == "default"


def test_a_context_cannot_be_changed() -> None:
    context = PhaseContext("report", {"a": 1})
    with pytest.raises(TypeError):
        context["a"] = 2  # type: ignore[index]


def test_a_missing_name_says_which_phase_what_it_holds_and_what_to_do() -> None:
    context = PhaseContext("report", {"a": 1, "b": 2})
    with pytest.raises(KeyError) as caught:
        context["hash_all"]
    error = caught.value
    assert isinstance(error, MissingDependency)
    assert str(error) == ("phase 'report' has no dependency 'hash_all'; its context holds: "
                          "a, b; add 'hash_all' to depends_on")
    assert error.args == ("hash_all",)


def test_a_missing_indirect_dependency_is_called_one() -> None:
    context = PhaseContext("report", {"b": 2}, frozenset({"a"}))
    with pytest.raises(MissingDependency, match="'a' runs before it only as a dependency"):
        context["a"]


def test_contexts_and_their_errors_pickle() -> None:
    context = PhaseContext("report", {"a": [1]}, frozenset({"x"}))
    copy = pickle.loads(pickle.dumps(context))
    assert copy == context
    with pytest.raises(MissingDependency, match="runs before it only"):
        copy["x"]
    error = pickle.loads(pickle.dumps(MissingDependency("p", "k", ("a",), True)))
    assert str(error) == str(MissingDependency("p", "k", ("a",), True))


def test_a_run_gives_each_phase_its_direct_dependencies_and_knows_the_indirect_ones() -> None:
    seen = {}

    def report(context):
        seen["context"] = context
        return context["b"]

    pipeline = Pipeline(
        "chain",
        Phase("a", lambda: 1),
        Phase("b", lambda context: context["a"] + 1, depends_on="a"),
        Phase("report", report, depends_on="b"),
    )
    result = pipeline.run(executor="inline")
    assert result.results["report"] == 2
    assert dict(seen["context"]) == {"b": 2}
    with pytest.raises(MissingDependency, match="runs before it only as a dependency"):
        seen["context"]["a"]
