"""``phasewise run --tui``: the detail view of a live run, as a reporter plugin.

``DetailViewReporter(tty_in: int, tty_out: TextIO, *, max_logs: int | None = None)``:
register it with the plugin manager for the length of a run; it follows the first run it
is shown, draws from a thread of its own on ``tty_out`` and reads keys from the file
descriptor ``tty_in`` (both the same terminal; ``DetailViewReporter.for_terminal()`` uses
stdin/stdout, or says why it cannot). q asks "stop the run? [y/N]" while the run goes
on; y interrupts it as Ctrl-C would. Once the run has ended the view stays, and
``phasewise_run_finish`` waits, until q. The run's output should be captured
(``capture_output``): lines a phase prints straight to the terminal would draw over the
view until its next frame.
"""

from __future__ import annotations

import _thread
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

from phasewise.cli.tui.loop import ViewLoop, log_height_for, view_store
from phasewise.cli.tui.terminal import Terminal
from phasewise.core import actions as A
from phasewise.core.actions import Action
from phasewise.core.state import make_reducer
from phasewise.core.store import Store
from phasewise.core.view import KEY, Key, Quit, make_detail_reducer
from phasewise.plugins.markers import hookimpl

__all__ = ["DetailViewReporter"]


class DetailViewReporter:
    """The detail view of a live run, as a reporter plugin (see the module docstring).

    ``tty_in``: the file descriptor keys are read from; ``tty_out``: where the view is
    drawn; ``max_logs``: lines kept per phase (default: each phase's ``max_logs``).
    """

    def __init__(self, tty_in: int, tty_out: TextIO, *, max_logs: int | None = None) -> None:
        self._in, self._out, self._max_logs = tty_in, tty_out, max_logs
        self._pipeline: Any = None
        self._store: Store | None = None
        self._reducer: Callable[[Any, Action], Any] = lambda state, action: state
        self._loop: ViewLoop | None = None
        self._thread: threading.Thread | None = None
        self._unobserve: Callable[[], None] = lambda: None
        self._lock = threading.Lock()
        self._ended = ""  # how the run ended, once it has
        self._asking = False
        self.failure: BaseException | None = None
        """What broke the view's thread, if something did (the run goes on without it)."""

    @classmethod
    def for_terminal(cls, **options: Any) -> DetailViewReporter:
        """A reporter on the terminal of stdin and stdout; ``BadInput`` if there is none."""
        from phasewise.cli.errors import BadInput

        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            raise BadInput("--tui draws in a terminal, and stdin and stdout are not both "
                           "one; leave --tui out")
        return cls(sys.stdin.fileno(), sys.stdout, **options)

    @hookimpl
    def phasewise_run_start(self, pipeline: Any, store: Store) -> None:
        if self._pipeline is not None:
            return  # follows the first run only (a pipeline one of its phases runs, say)
        self._pipeline = pipeline
        order = pipeline.execution_order()
        if self._max_logs is None:  # the run's own state, reduced once, by the run's store
            def runs_state(state: Any, action: Action) -> Any:
                return store.state

            reducer = make_detail_reducer(runs_state)
        else:  # lines kept per phase differ from the run's: a state of the view's own
            reducer = make_detail_reducer(make_reducer(
                pipeline.name, order, {p.name: p.weight for p in pipeline.phases},
                {p.name: self._max_logs for p in pipeline.phases}))
        terminal = Terminal(self._in, self._out)
        view = self._store = view_store(reducer,
                                        log_height_for(terminal.size()[1], len(order)))
        self._reducer = reducer
        self._loop = ViewLoop(terminal, lambda: view, time.monotonic, note=self._note,
                               before_key=self._before_key)
        terminal.open()
        self._unobserve = store.observe(self._forward)
        self._thread = threading.Thread(target=self._run, name="phasewise-tui", daemon=True)
        self._thread.start()

    @hookimpl
    def phasewise_run_finish(self, pipeline: Any, result: Any,
                             error: BaseException | None) -> None:
        """Once the run has ended on its own, wait for q; else close the view at once."""
        if pipeline is not self._pipeline or self._loop is None:
            return
        self._unobserve()
        with self._lock:
            self._ended = "interrupted" if result.interrupted else result.status
        if error is not None:
            self._loop.stop.set()
        self._loop.redraw.set()
        try:
            while self._thread is not None and self._thread.is_alive():
                self._thread.join(0.2)
        except KeyboardInterrupt:  # Ctrl-C on the finished view: as q
            self._loop.stop.set()
        finally:
            self._loop.terminal.close()

    def _forward(self, action: Action) -> None:
        """Each action of the run into the view's Store: the view never breaks the run."""
        if self._store is None or self.failure is not None:
            return
        try:
            self._store.dispatch(action)
        except Exception as exc:
            self.failure = exc
        if action.type == A.PIPELINE_COMPLETE:  # from here on, y must not interrupt it
            with self._lock:
                self._ended = self._ended or self._store.state.pipeline.status

    def _run(self) -> None:
        assert self._loop is not None
        try:
            self._loop.run()
        except BaseException as exc:
            self.failure = exc
            self._loop.terminal.close()
            self._out.write(f"phasewise: the detail view stopped: {exc!r}\n")
            self._out.flush()
        finally:
            self._loop.terminal.close()

    def _note(self) -> str:
        if self._asking:
            return "stop the run? [y/N]"
        if self._ended:
            return f"the run {self._ended} · q quits"
        return ""

    def _before_key(self, key: Key) -> bool:
        """While the run goes on, a key that would quit asks first; y interrupts the run."""
        assert self._store is not None and self._loop is not None
        if self._asking:
            self._asking = False
            if key.char in ("y", "Y"):
                with self._lock:
                    self._loop.stop.set()
                    if not self._ended:  # else it ended meanwhile: y only quits
                        self._loop.terminal.close()
                        _thread.interrupt_main()
            return True
        if not self._ended and isinstance(
                self._reducer(self._store.state, Action(KEY, key)), Quit):
            self._asking = True
            return True
        return False

