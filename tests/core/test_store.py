"""Store: dispatch, state, subscribe/unsubscribe, thread safety, run_saga."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from phasewise import Action, Phase, Pipeline, Store
from phasewise.core.saga import Put, Select


def counter(state: Any, action: Action) -> Any:
    if state is None or action.type == "@@INIT":
        return 0
    if action.type == "ADD":
        return state + action.payload
    return state


def test_initial_state_comes_from_init() -> None:
    store = Store(counter)
    assert store.state == 0
    assert store.get_state() == 0


def test_initial_state_can_be_given() -> None:
    store = Store(counter, initial_state=10)
    store.dispatch(Action("ADD", 5))
    assert store.state == 15


def test_dispatch_reduces_and_get_state_agrees() -> None:
    store = Store(counter)
    store.dispatch(Action("ADD", 2))
    store.dispatch(Action("ADD", 3))
    store.dispatch(Action("IGNORED"))
    assert store.state == 5
    assert store.get_state() is store.state


def test_listeners_are_called_without_arguments_after_each_dispatch_in_order() -> None:
    store = Store(counter)
    calls: list[tuple[str, int]] = []
    store.subscribe(lambda: calls.append(("first", store.state)))
    store.subscribe(lambda: calls.append(("second", store.state)))
    store.dispatch(Action("ADD", 1))
    store.dispatch(Action("ADD", 1))
    assert calls == [("first", 1), ("second", 1), ("first", 2), ("second", 2)]


def test_unsubscribe_stops_calls_and_is_idempotent() -> None:
    store = Store(counter)
    seen: list[int] = []
    unsubscribe = store.subscribe(lambda: seen.append(store.state))
    other: list[int] = []
    store.subscribe(lambda: other.append(store.state))
    store.dispatch(Action("ADD", 1))
    unsubscribe()
    unsubscribe()
    store.dispatch(Action("ADD", 1))
    assert seen == [1]
    assert other == [1, 2]


def test_a_listener_may_dispatch() -> None:
    store = Store(counter)
    seen: list[int] = []

    def listener() -> None:
        seen.append(store.state)
        if store.state == 1:
            store.dispatch(Action("ADD", 10))

    store.subscribe(listener)
    store.dispatch(Action("ADD", 1))
    assert store.state == 11
    assert sorted(seen) == [1, 11]


def test_dispatch_from_many_threads_applies_every_action_exactly_once() -> None:
    threads, per_thread = 8, 400
    store = Store(counter)
    seen: list[int] = []
    store.subscribe(lambda: seen.append(store.state))
    barrier = threading.Barrier(threads)

    def work() -> None:
        barrier.wait()
        for _ in range(per_thread):
            store.dispatch(Action("ADD", 1))

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    total = threads * per_thread
    assert store.state == total
    # one listener call per dispatch, each seeing the state its own dispatch made
    assert seen == list(range(1, total + 1))


def test_run_saga_returns_what_the_saga_returns() -> None:
    store = Store(counter)

    def saga():
        yield Put(Action("ADD", 4))
        value = yield Select(lambda s: s * 10)
        return value

    assert store.run_saga(saga) == 40
    assert store.run_saga(saga()) == 80


def double(context):
    return context["one"] * 2


PIPELINE = Pipeline(
    "tiny",
    Phase("one", lambda: 1),
    Phase("two", double, depends_on="one"),
)


def test_run_saga_accepts_the_pipeline_saga_function() -> None:
    store = Store(PIPELINE.build_reducer())
    results = store.run_saga(PIPELINE.build_saga())
    assert store.state.status == "completed"
    assert [p.status for p in store.state.phases] == ["completed", "completed"]
    assert results == {"one": 1, "two": 2}


def test_run_saga_accepts_a_generator_made_from_the_pipeline_saga() -> None:
    store = Store(PIPELINE.build_reducer())
    results = store.run_saga(PIPELINE.build_saga()())
    assert store.state.status == "completed"
    assert results == {"one": 1, "two": 2}


def test_pipeline_run_uses_a_given_store() -> None:
    store = Store(PIPELINE.build_reducer())
    seen: list[str] = []
    store.subscribe(lambda: seen.append(store.state.status))
    result = PIPELINE.run(executor="inline", store=store)
    assert result.state is store.state
    assert seen[0] == "running"
    assert seen[-1] == "completed"


def test_observers_get_each_action_in_order_with_listeners() -> None:
    store = Store(counter)
    calls: list[Any] = []
    store.subscribe(lambda: calls.append(("listener", store.state)))
    unobserve = store.observe(lambda action: calls.append(("observer", action.payload)))
    store.dispatch(Action("ADD", 3))
    unobserve()
    store.dispatch(Action("ADD", 4))
    assert calls == [("listener", 3), ("observer", 3), ("listener", 7)]


class ListenerBroke(Exception):
    pass


@pytest.mark.timeout(30)
@pytest.mark.parametrize("executor", ["inline", "thread"])
def test_a_listener_that_raises_mid_run_ends_the_run_with_its_error(executor: str) -> None:
    store = Store(PIPELINE.build_reducer())

    def listener() -> None:
        if store.state.phase("two").status == "running":
            raise ListenerBroke("listener failed")

    store.subscribe(listener)
    with pytest.raises(ListenerBroke):
        PIPELINE.run(executor=executor, store=store)
