"""The terminal taken over while the detail view is up.

It is in cbreak mode (keys arrive one by one, unechoed; Ctrl-C still interrupts) on the
alternate screen, and is put back on every way out: q, Ctrl-C, an exception; a terminal
that hangs up ends the view (``read`` raises ``EOFError``, drawing ``OSError``). Each
frame is painted whole, to the terminal's size at the time.
"""

from __future__ import annotations

import atexit
import io
import os
import select
import termios
import threading
import tty
from collections.abc import Sequence
from typing import Any, TextIO

from rich.console import Console
from rich.text import Text

__all__ = ["Terminal"]


class Terminal:
    """A terminal taken over for the view: cbreak mode on ``fd_in``, the alternate screen
    and no cursor on ``out``, all put back by ``close`` (also at interpreter exit, should
    ``close`` never be reached)."""

    def __init__(self, fd_in: int, out: TextIO) -> None:
        self._fd, self._out = fd_in, out
        self._saved: list[Any] | None = None
        self._console = Console(file=io.StringIO(), force_terminal=True, highlight=False,
                                markup=False, emoji=False, width=10_000)
        self._lock = threading.Lock()

    def open(self) -> Terminal:
        self._saved = termios.tcgetattr(self._fd)
        atexit.register(self.close)
        tty.setcbreak(self._fd, termios.TCSANOW)
        self._write("\x1b[?1049h\x1b[?25l\x1b[2J")
        return self

    def close(self) -> None:
        with self._lock:
            saved, self._saved = self._saved, None
            if saved is None:
                return
            atexit.unregister(self.close)
            try:
                self._write("\x1b[?25h\x1b[?1049l")
                termios.tcsetattr(self._fd, termios.TCSADRAIN, saved)
            except (OSError, ValueError, termios.error):
                try:  # the output is gone (hung up, closed): the modes still go back
                    termios.tcsetattr(self._fd, termios.TCSANOW, saved)
                except termios.error:
                    pass  # so is the terminal: nothing is left to put back

    def __enter__(self) -> Terminal:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def size(self) -> tuple[int, int]:
        try:
            columns, lines = os.get_terminal_size(self._out.fileno())
        except (OSError, ValueError):
            return 80, 24
        return max(columns, 20), max(lines, 5)

    def read(self, timeout: float) -> bytes:
        """What the keyboard sent, waiting up to ``timeout`` seconds (b"" if nothing);
        ``EOFError`` once the terminal is gone (hung up)."""
        ready, _, _ = select.select([self._fd], [], [], max(0.0, timeout))
        if not ready:
            return b""
        try:
            data = os.read(self._fd, 1024)
        except OSError as exc:  # EIO: the terminal hung up
            raise EOFError(f"the terminal is gone ({exc.strerror})") from None
        if not data:
            raise EOFError("the terminal is gone")
        return data

    def draw(self, lines: Sequence[Text]) -> None:
        """Paint the whole screen, every line (lines may not reach the last column)."""
        with self._console.capture() as capture:
            self._console.print(Text("\n").join(lines), end="", soft_wrap=True)
        painted = "".join(f"\x1b[{n};1H{line}\x1b[K"
                          for n, line in enumerate(capture.get().split("\n"), start=1))
        self._write(f"\x1b[H{painted}\x1b[J")

    def _write(self, text: str) -> None:
        self._out.write(text)
        self._out.flush()

