"""Store: holds the state, applies actions through the reducer, tells listeners."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from phasewise.core.actions import INIT, Action

__all__ = ["Quit", "Store"]

Reducer = Callable[[Any, Action], Any]
Listener = Callable[[], None]


@dataclass(frozen=True, slots=True)
class Quit:
    """What a reducer returns to ask the Store's owner to stop (the detail view's does when
    the user presses q); ``state`` is the state to keep."""

    state: Any
    code: int = 0


class Store:
    """A state container with a pure reducer.

    ``dispatch`` is thread-safe: actions are reduced one at a time, and listeners are
    called with no arguments after each dispatch, in dispatch order (they read
    ``store.state``). Observers (``observe``) are called the same way with the action
    itself, for those that need to know what happened rather than only what is. A
    reducer that returns a ``Quit`` (the detail view's reducer does) leaves
    ``Quit.state`` as the state and ``quit_requested`` true.
    """

    def __init__(self, reducer: Reducer, initial_state: Any = None) -> None:
        self._reducer = reducer
        self._lock = threading.RLock()
        self._listeners: tuple[Callable[[Action], None], ...] = ()
        self.quit_requested = False
        self._state = reducer(None, Action(INIT)) if initial_state is None else initial_state

    @property
    def state(self) -> Any:
        return self._state

    def get_state(self) -> Any:
        return self._state

    def dispatch(self, action: Action) -> None:
        with self._lock:
            new = self._reducer(self._state, action)
            if isinstance(new, Quit):
                self.quit_requested = True
                new = new.state
            self._state = new
            for listener in self._listeners:
                listener(action)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener()`` after every dispatch; returns a function that unsubscribes."""
        return self.observe(lambda action: listener())

    def observe(self, observer: Callable[[Action], None]) -> Callable[[], None]:
        """Call ``observer(action)`` after every dispatch, in subscription order with the
        listeners; returns a function that unsubscribes."""
        with self._lock:
            self._listeners = (*self._listeners, observer)

        def unsubscribe() -> None:
            with self._lock:
                self._listeners = tuple(x for x in self._listeners if x is not observer)

        return unsubscribe

    def run_saga(self, saga: Any) -> Any:
        """Run ``saga`` (a generator function or a generator) to completion in this thread.

        Returns what the saga returns; raises what it raises. On Ctrl-C the saga is
        cancelled, allowed to clean up, and KeyboardInterrupt is re-raised.
        """
        from phasewise.core.runner import SagaRunner

        return SagaRunner(self.dispatch, self.get_state).run(saga)
