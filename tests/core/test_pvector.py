"""PVector, the persistent vector under PipelineState.phases, against a list model."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from phasewise.core.pvector import PVector

# sizes around the 64-way tree's boundaries, and one past depth 2
SIZES = st.one_of(st.integers(0, 140), st.sampled_from([4095, 4096, 4097, 64 * 64 * 64 + 1]))


@given(SIZES, st.data())
def test_pvector_behaves_like_a_list_and_old_versions_survive(size: int, data) -> None:
    model = [("item", i) for i in range(size)]
    vec = PVector(model)
    history = [(vec, list(model))]
    if size:
        ops = data.draw(st.lists(st.tuples(st.integers(0, size - 1), st.integers()),
                                 max_size=40))
    else:
        ops = []
    for index, value in ops:
        vec = vec.set(index, value)
        model[index] = value
        history.append((vec, list(model)))
    for version, expected in history:
        assert len(version) == len(expected)
        assert list(version) == expected
        assert version.to_tuple() == tuple(expected)
        probes = data.draw(st.lists(st.integers(-size, size - 1), max_size=5)) if size else []
        for i in probes:
            assert version[i] == expected[i]


@pytest.mark.parametrize("size", [0, 1, 32, 33, 1025])
def test_out_of_range_raises_index_error(size: int) -> None:
    vec = PVector(range(size))
    for bad in (size, size + 1, -size - 1):
        with pytest.raises(IndexError):
            vec[bad]
    with pytest.raises(IndexError):
        vec.set(size, "x")
    with pytest.raises(IndexError):
        vec.set(-1, "x")


def test_set_returns_a_new_vector() -> None:
    vec = PVector("abc")
    other = vec.set(1, "B")
    assert other is not vec
    assert list(vec) == ["a", "b", "c"]
    assert list(other) == ["a", "B", "c"]


def test_accepts_any_iterable() -> None:
    assert list(PVector(x * 2 for x in range(100))) == [x * 2 for x in range(100)]
