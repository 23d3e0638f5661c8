"""Pipeline validation (unknown dependencies, duplicates, cycles) and execution order."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from phasewise import CycleError, Phase, PhasewiseError, Pipeline, PipelineError
from phasewise.core import graph


def noop() -> None:
    return None


def ph(name: str, *deps: str, parallel: bool = False) -> Phase:
    return Phase(name, noop, depends_on=deps, parallel=parallel)


# ── validation messages ─────────────────────────────────────────────────────


def test_unknown_dependency_names_it_and_lists_available_phases() -> None:
    with pytest.raises(PipelineError) as info:
        Pipeline("p", ph("fetch"), ph("parse", "fetch"), ph("render", "prase"))
    message = str(info.value)
    assert "'prase'" in message
    assert "'render'" in message
    assert "Available phases" in message
    for name in ("fetch", "parse", "render"):
        assert name in message.split("Available phases", 1)[1]
    assert not isinstance(info.value, CycleError)


def test_unknown_dependency_is_a_phasewise_error() -> None:
    with pytest.raises(PhasewiseError):
        Pipeline("p", ph("a", "ghost"))


def test_duplicate_name_is_a_pipeline_error_naming_it() -> None:
    with pytest.raises(PipelineError, match="duplicate") as info:
        Pipeline("p", ph("build"), ph("test", "build"), ph("build"))
    assert "'build'" in str(info.value)
    assert not isinstance(info.value, CycleError)


def test_duplicate_added_with_rshift_is_rejected() -> None:
    base = Pipeline("p", ph("a"))
    with pytest.raises(PipelineError, match="duplicate"):
        base >> ph("a")


def test_two_cycle_message_shows_the_path() -> None:
    with pytest.raises(CycleError) as info:
        Pipeline("p", ph("a", "b"), ph("b", "a"))
    assert str(info.value) in (
        "Circular dependency: a → b → a",
        "Circular dependency: b → a → b",
    )
    assert info.value.path[0] == info.value.path[-1]


def test_cycle_error_is_a_pipeline_error() -> None:
    assert issubclass(CycleError, PipelineError)
    assert issubclass(PipelineError, PhasewiseError)


def test_self_cycle() -> None:
    with pytest.raises(CycleError) as info:
        Pipeline("p", ph("ok"), ph("loop", "loop"))
    assert str(info.value) == "Circular dependency: loop → loop"
    assert info.value.path == ["loop", "loop"]


def test_long_cycle_path_lists_every_member_once() -> None:
    names = [f"n{i}" for i in range(12)]
    phases = [ph(name, names[(i + 1) % len(names)]) for i, name in enumerate(names)]
    with pytest.raises(CycleError) as info:
        Pipeline("p", ph("entry", "n0"), *phases)
    path = info.value.path
    assert path[0] == path[-1]
    assert sorted(path[:-1]) == sorted(names)
    assert str(info.value) == "Circular dependency: " + " → ".join(path)
    deps = {p.name: p.depends_on for p in phases}
    for a, b in itertools.pairwise(path):
        assert b in deps[a]


def test_cycle_reachable_only_through_an_acyclic_prefix() -> None:
    # entry → x → y → z → x: the reported path is the cycle, not the prefix
    with pytest.raises(CycleError) as info:
        Pipeline("p", ph("entry", "x"), ph("x", "y"), ph("y", "z"), ph("z", "x"))
    assert sorted(info.value.path[:-1]) == ["x", "y", "z"]


# ── execution order ─────────────────────────────────────────────────────────


def test_execution_order_is_level_by_level_sorted_within_a_level() -> None:
    pipeline = Pipeline(
        "site",
        ph("write", "render", "assets"),
        ph("render", "parse"),
        ph("parse", "discover"),
        ph("assets", "discover"),
        ph("zeta"),
        ph("discover"),
    )
    assert pipeline.levels() == [
        ["discover", "zeta"],
        ["assets", "parse"],
        ["render"],
        ["write"],
    ]
    assert pipeline.execution_order() == [
        "discover", "zeta", "assets", "parse", "render", "write",
    ]


def test_a_phase_is_one_level_past_its_deepest_dependency() -> None:
    pipeline = Pipeline("p", ph("a"), ph("b", "a"), ph("c", "b"), ph("d", "a", "c"))
    assert pipeline.levels() == [["a"], ["b"], ["c"], ["d"]]


def test_repeated_dependency_is_harmless() -> None:
    pipeline = Pipeline("p", ph("a"), Phase("b", noop, depends_on=("a", "a")))
    assert pipeline.execution_order() == ["a", "b"]


def test_empty_pipeline() -> None:
    assert Pipeline("empty").execution_order() == []


# ── properties ──────────────────────────────────────────────────────────────

NAME = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=8)


@st.composite
def dags(draw: st.DrawFn, max_size: int = 25) -> tuple[list[str], dict[str, tuple[str, ...]]]:
    """Random DAG: phase j may depend only on phases i < j; declared in random order."""
    names = draw(st.lists(NAME, min_size=1, max_size=max_size, unique=True))
    deps: dict[str, tuple[str, ...]] = {}
    for j, name in enumerate(names):
        chosen = draw(st.sets(st.integers(0, j - 1), max_size=4)) if j else set()
        deps[name] = tuple(names[i] for i in sorted(chosen))
    declared = draw(st.permutations(names))
    return list(declared), deps


def _reaches(deps: dict[str, tuple[str, ...]], start: str) -> set[str]:
    """Every phase ``start`` depends on, directly or not."""
    seen: set[str] = set()
    stack = [start]
    while stack:
        for d in deps[stack.pop()]:
            if d not in seen:
                seen.add(d)
                stack.append(d)
    return seen


@given(dags())
def test_execution_order_is_a_topological_order_of_every_phase(dag) -> None:
    declared, deps = dag
    pipeline = Pipeline("p", *(ph(n, *deps[n]) for n in declared))
    order = pipeline.execution_order()
    assert sorted(order) == sorted(declared)
    position = {name: i for i, name in enumerate(order)}
    for name, ds in deps.items():
        for d in ds:
            assert position[d] < position[name]
    levels = pipeline.levels()
    assert [n for level in levels for n in level] == order
    depth = {n: i for i, level in enumerate(levels) for n in level}
    for level in levels:
        assert level == sorted(level)
    for name, ds in deps.items():
        # dataflow-tight levels: one past the deepest dependency
        assert depth[name] == (max(depth[d] for d in ds) + 1 if ds else 0)


@given(dags(), st.data())
def test_a_back_edge_raises_cycle_error_with_a_real_cycle(dag, data) -> None:
    declared, deps = dag
    # pick a phase ``low`` and one that depends on it (transitively or itself); make
    # ``low`` depend on that one — a cycle through the back edge
    low = data.draw(st.sampled_from(declared))
    above = sorted(n for n in declared if n == low or low in _reaches(deps, n))
    high = data.draw(st.sampled_from(above))
    cyclic = dict(deps)
    cyclic[low] = (*deps[low], high)
    with pytest.raises(CycleError) as info:
        Pipeline("p", *(ph(n, *cyclic[n]) for n in declared))
    path = info.value.path
    assert len(path) >= 2
    assert path[0] == path[-1]
    assert len(set(path[:-1])) == len(path) - 1  # a simple cycle
    for a, b in itertools.pairwise(path):
        assert b in cyclic[a], f"{a} → {b} is not an edge"
    assert str(info.value) == "Circular dependency: " + " → ".join(path)


def test_ten_thousand_phase_chain_validates_without_recursion_error() -> None:
    n = 10_000
    phases = [ph("p0")] + [ph(f"p{i}", f"p{i - 1}") for i in range(1, n)]
    pipeline = Pipeline("chain", *reversed(phases))
    assert pipeline.execution_order() == [f"p{i}" for i in range(n)]


def test_ten_thousand_phase_cycle_is_found_without_recursion_error() -> None:
    n = 10_000
    names = [f"p{i}" for i in range(n)]
    deps = {name: (names[i - 1],) for i, name in enumerate(names)}  # p0 → p9999
    with pytest.raises(CycleError) as info:
        graph.validate(names, deps)
    assert len(info.value.path) == n + 1
