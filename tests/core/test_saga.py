"""Saga effects and the runner: every effect, errors, cancellation, deadlock detection."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from phasewise import Action, PhasewiseError, Store
from phasewise.core.errors import PhaseTimeout
from phasewise.core.saga import (
    All,
    Call,
    Cancel,
    Channel,
    Delay,
    Execute,
    Fork,
    Join,
    Put,
    SagaCancelled,
    SagaError,
    Select,
    Send,
    Take,
)
from phasewise.core.task import Task
from phasewise.core.wire import Log
from phasewise.executors import InlineExecutor, ThreadExecutor


def history(state: Any, action: Action) -> Any:
    """Reducer: the state is the tuple of every action type seen (after @@INIT)."""
    if state is None or action.type == "@@INIT":
        return ()
    return (*state, action.type if action.payload is None else (action.type, action.payload))


@pytest.fixture
def store() -> Store:
    return Store(history)


# ── simple effects ──────────────────────────────────────────────────────────


def test_put_dispatches_and_resumes_with_none(store: Store) -> None:
    def saga():
        got = yield Put(Action("A"))
        yield Put(Action("B", 1))
        return got

    assert store.run_saga(saga) is None
    assert store.state == ("A", ("B", 1))


def test_select_with_and_without_selector(store: Store) -> None:
    def saga():
        yield Put(Action("A"))
        whole = yield Select()
        count = yield Select(len)
        return whole, count

    assert store.run_saga(saga) == (("A",), 1)


def test_call_returns_the_value_and_passes_args() -> None:
    def saga():
        return (yield Call(divmod, args=(17, 5))), (yield Call(dict, kwargs={"a": 1}))

    assert Store(history).run_saga(saga) == ((3, 2), {"a": 1})


def test_call_of_a_generator_function_runs_it_as_a_saga(store: Store) -> None:
    def child(n):
        yield Put(Action("CHILD", n))
        return n + 1

    def saga():
        return (yield Call(child, args=(41,)))

    assert store.run_saga(saga) == 42
    assert store.state == (("CHILD", 41),)


def test_yielding_a_generator_runs_it_and_returns_its_value(store: Store) -> None:
    def child():
        yield Put(Action("C"))
        return "done"

    def saga():
        return (yield child())

    assert store.run_saga(saga) == "done"


def test_error_from_call_is_thrown_back_into_the_saga() -> None:
    def saga():
        try:
            yield Call(int, args=("not a number",))
        except ValueError as exc:
            return f"caught {type(exc).__name__}"
        return "not caught"

    assert Store(history).run_saga(saga) == "caught ValueError"


def test_uncaught_error_escapes_run_saga() -> None:
    def saga():
        yield Call(int, args=("x",))

    with pytest.raises(ValueError):
        Store(history).run_saga(saga)


def test_yielding_a_non_effect_raises_saga_error_in_the_saga() -> None:
    def saga():
        try:
            yield "not an effect"
        except SagaError as exc:
            return str(exc)

    message = Store(history).run_saga(saga)
    assert "not an effect" in message
    assert issubclass(SagaError, PhasewiseError)


def test_yielding_a_non_effect_uncaught_raises_saga_error() -> None:
    def saga():
        yield 42

    with pytest.raises(SagaError):
        Store(history).run_saga(saga)


def test_run_saga_rejects_what_is_not_a_saga() -> None:
    with pytest.raises(SagaError):
        Store(history).run_saga(42)


# ── fork / join / cancel ───────────────────────────────────────────────────


def test_fork_runs_alongside_and_join_returns_its_value(store: Store) -> None:
    def child(tag):
        yield Put(Action("CHILD", tag))
        yield Delay(0)
        return tag * 2

    def saga():
        task = yield Fork(child, ("x",))
        yield Put(Action("PARENT"))
        value = yield Join(task)
        again = yield Join(task)  # joining a finished saga returns at once
        return value, again, task.done

    assert store.run_saga(saga) == ("xx", "xx", True)
    assert set(store.state) == {("CHILD", "x"), "PARENT"}


def test_fork_accepts_a_generator() -> None:
    def child():
        yield Delay(0)
        return 7

    def saga():
        return (yield Join((yield Fork(child()))))

    assert Store(history).run_saga(saga) == 7


def test_join_raises_the_forked_saga_error() -> None:
    def child():
        yield Delay(0)
        raise KeyError("inner")

    def saga():
        task = yield Fork(child)
        try:
            yield Join(task)
        except KeyError as exc:
            return exc.args[0]

    assert Store(history).run_saga(saga) == "inner"


def test_cancel_throws_saga_cancelled_into_the_forked_saga(store: Store) -> None:
    def child():
        try:
            yield Delay(30)
        except SagaCancelled:
            yield Put(Action("CLEANED_UP"))
            raise
        yield Put(Action("NEVER"))

    def saga():
        task = yield Fork(child)
        yield Delay(0)
        yield Cancel(task)
        try:
            yield Join(task)
        except SagaCancelled:
            return "cancelled"

    assert store.run_saga(saga) == "cancelled"
    assert store.state == ("CLEANED_UP",)


def test_cancelling_a_finished_saga_is_a_no_op() -> None:
    def child():
        return 1
        yield  # pragma: no cover

    def saga():
        task = yield Fork(child)
        yield Delay(0)
        yield Cancel(task)
        return (yield Join(task))

    assert Store(history).run_saga(saga) == 1


# ── all ─────────────────────────────────────────────────────────────────────


def test_all_returns_results_in_order() -> None:
    def slow(v):
        yield Delay(0.05)
        return v

    def fast(v):
        yield Delay(0)
        return v

    def saga():
        return (yield All(sagas=(slow("a"), fast("b"), Call(len, args=("ccc",)), Delay(0))))

    assert Store(history).run_saga(saga) == ["a", "b", 3, None]


def test_all_of_nothing_is_an_empty_list() -> None:
    def saga():
        return (yield All())

    assert Store(history).run_saga(saga) == []


def test_all_with_one_failing_cancels_the_others_and_raises(store: Store) -> None:
    def waits(tag):
        try:
            yield Delay(30)
        except SagaCancelled:
            yield Put(Action("CANCELLED", tag))
            raise
        return tag

    def fails():
        yield Delay(0)
        raise RuntimeError("one failed")

    def saga():
        try:
            yield All(sagas=(waits("a"), fails(), waits("b")))
        except RuntimeError as exc:
            return str(exc)

    assert store.run_saga(saga) == "one failed"
    assert sorted(store.state) == [("CANCELLED", "a"), ("CANCELLED", "b")]


# ── delay ───────────────────────────────────────────────────────────────────


def test_delays_wake_in_deadline_order_not_fork_order(store: Store) -> None:
    def sleeper(seconds):
        yield Delay(seconds)
        yield Put(Action("WOKE", seconds))

    def saga():
        tasks = []
        for seconds in (0.3, 0.0, 0.15):
            tasks.append((yield Fork(sleeper, (seconds,))))
        for task in tasks:
            yield Join(task)

    store.run_saga(saga)
    assert store.state == (("WOKE", 0.0), ("WOKE", 0.15), ("WOKE", 0.3))


def test_a_delay_does_not_hold_up_other_sagas(store: Store) -> None:
    channel = Channel()

    def sleeper():
        yield Delay(0.2)
        yield Put(Action("SLEPT"))

    def busy():
        for i in range(3):
            yield Put(Action("BUSY", i))
        yield Send(channel, "busy done")

    def saga():
        a = yield Fork(sleeper)
        b = yield Fork(busy)
        yield Take(channel)
        yield Put(Action("TOOK"))
        yield Join(a)
        yield Join(b)

    store.run_saga(saga)
    assert store.state[-1] == "SLEPT"


# ── channels ────────────────────────────────────────────────────────────────


def test_take_waits_for_send_and_items_queue_in_order() -> None:
    channel = Channel()

    def producer():
        for i in range(3):
            yield Send(channel, i)
            yield Delay(0)

    def saga():
        early = Channel()
        yield Send(early, "queued")  # nobody waiting: the item is kept
        first = yield Take(early)
        task = yield Fork(producer)
        got = []
        for _ in range(3):
            got.append((yield Take(channel)))
        yield Join(task)
        return first, got

    assert Store(history).run_saga(saga) == ("queued", [0, 1, 2])


def test_a_cancelled_taker_does_not_swallow_an_item() -> None:
    channel = Channel()

    def taker():
        return (yield Take(channel))

    def saga():
        first = yield Fork(taker)
        second = yield Fork(taker)
        yield Delay(0)
        yield Cancel(first)
        yield Send(channel, "item")
        return (yield Join(second))

    assert Store(history).run_saga(saga) == "item"


# ── deadlock ────────────────────────────────────────────────────────────────


@pytest.mark.timeout(10)
def test_take_with_no_sender_is_a_deadlock_not_a_hang() -> None:
    def saga():
        yield Take(Channel())

    with pytest.raises(SagaError, match="deadlock"):
        Store(history).run_saga(saga)


@pytest.mark.timeout(10)
def test_joining_a_blocked_saga_is_a_deadlock_not_a_hang() -> None:
    def stuck():
        yield Take(Channel())

    def saga():
        yield Join((yield Fork(stuck)))

    with pytest.raises(SagaError, match="deadlock"):
        Store(history).run_saga(saga)


# ── execute ─────────────────────────────────────────────────────────────────


def greet(context):
    print("hello from", context["who"])
    return f"hi {context['who']}"


def to_actions(event: Any):
    if isinstance(event, Log):
        for line in event.lines:
            yield Action("LOG", (event.stream, line))


@pytest.mark.parametrize("make_executor", [InlineExecutor, ThreadExecutor])
def test_execute_returns_the_result_and_forwards_events(store: Store, make_executor) -> None:
    executor = make_executor()
    task = Task("greet", greet, {"who": "you"}, capture_output=True)

    def saga():
        return (yield Execute(task, executor, to_actions))

    try:
        assert store.run_saga(saga) == "hi you"
    finally:
        executor.shutdown()
    assert store.state == (("LOG", ("stdout", "hello from you")),)


def raise_it():
    raise LookupError("from the handler")


@pytest.mark.parametrize("make_executor", [InlineExecutor, ThreadExecutor])
def test_execute_raises_the_handler_error_in_the_saga(make_executor) -> None:
    executor = make_executor()

    def saga():
        try:
            yield Execute(Task("bad", raise_it), executor)
        except LookupError as exc:
            return str(exc)

    try:
        assert Store(history).run_saga(saga) == "from the handler"
    finally:
        executor.shutdown()


def test_execute_on_threads_runs_tasks_concurrently() -> None:
    executor = ThreadExecutor(max_workers=2)
    barrier = threading.Barrier(2, timeout=10)

    def meet():
        barrier.wait()  # only passes if both tasks run at once
        return threading.get_ident()

    def saga():
        return (yield All(sagas=(Execute(Task("a", meet), executor),
                                 Execute(Task("b", meet), executor))))

    try:
        a, b = Store(history).run_saga(saga)
    finally:
        executor.shutdown()
    assert a != b


@pytest.mark.timeout(20)
def test_execute_past_its_timeout_raises_phase_timeout() -> None:
    executor = ThreadExecutor(max_workers=1)
    release = threading.Event()

    def stuck():
        release.wait(10)
        return "late"

    def saga():
        try:
            yield Execute(Task("stuck", stuck, timeout=0.1), executor)
        except PhaseTimeout as exc:
            return exc

    try:
        error = Store(history).run_saga(saga)
    finally:
        release.set()
        executor.shutdown()
    assert isinstance(error, PhaseTimeout)
    assert error.phase == "stuck"
    assert "timed out after" in str(error)


def test_execute_on_inline_past_its_timeout_fails_afterwards() -> None:
    import time

    def slow():
        time.sleep(0.05)
        return "late"

    def saga():
        try:
            yield Execute(Task("slow", slow, timeout=0.01), InlineExecutor())
        except PhaseTimeout as exc:
            return str(exc)

    assert "timed out after" in Store(history).run_saga(saga)


def test_cancel_unstarted_only_withdraws_queued_tasks_and_leaves_running_ones(
    store: Store,
) -> None:
    executor = ThreadExecutor(max_workers=1)  # one thread: the second task waits its turn
    started, release = threading.Event(), threading.Event()

    def blocking() -> str:
        started.set()
        release.wait(10)
        return "finished"

    def runner(task: Task):
        return (yield Execute(task, executor))

    def saga():
        running = yield Fork(runner, (Task("running", blocking),))
        queued = yield Fork(runner, (Task("queued", lambda: "ran"),))
        yield Delay(0)  # both reach their Execute
        assert (yield Call(started.wait, args=(10,)))
        withdrawn = yield Cancel(queued, unstarted_only=True)
        kept = yield Cancel(running, unstarted_only=True)
        release.set()
        try:
            yield Join(queued)
        except SagaCancelled:
            queued_outcome = "cancelled"
        return withdrawn, kept, queued_outcome, (yield Join(running))

    try:
        assert store.run_saga(saga) == (True, False, "cancelled", "finished")
    finally:
        release.set()
        executor.shutdown()


def test_cancelling_an_execute_drops_its_later_events(store: Store) -> None:
    executor = ThreadExecutor(max_workers=1)
    started, release = threading.Event(), threading.Event()

    def chatty():
        print("before")
        started.set()
        release.wait(10)
        print("after")

    def runner():
        yield Execute(Task("chatty", chatty, capture_output=True), executor, to_actions)

    def saga():
        task = yield Fork(runner)
        yield Delay(0)  # let the child reach its Execute
        assert (yield Call(started.wait, args=(10,)))
        yield Cancel(task)
        try:
            yield Join(task)
        except SagaCancelled:
            return "cancelled"

    try:
        assert store.run_saga(saga) == "cancelled"
    finally:
        release.set()
        executor.shutdown()
    assert ("LOG", ("stdout", "after")) not in store.state
