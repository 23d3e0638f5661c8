"""Review points on a terminal: after a phase with ``Phase(review=...)`` or named by
``--pause-after``, show the message and the phase's folder and wait for Enter (go on)
or ``q`` and Enter (stop; the run ends cancelled and can be carried on with
``--resume``).

Only an interactive run waits (stdin and stderr both terminals, no ``--no-pause``);
any other gets no review function, so ``Pipeline.run`` never pauses.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TextIO

__all__ = ["STOP_ANSWERS", "is_interactive", "terminal_review"]

STOP_ANSWERS = frozenset({"q", "quit", "stop"})

Review = Callable[[str, str, Path | None], bool]


def is_interactive(stdin: TextIO | None, stderr: TextIO) -> bool:
    """Whether someone can answer at a review point: stdin and stderr are terminals."""
    try:
        return bool(stdin is not None and stdin.isatty() and stderr.isatty())
    except (AttributeError, OSError, ValueError):
        return False


def terminal_review(stdin: TextIO, out: TextIO, resume_command: str) -> Review:
    """A ``review(phase, message, folder)`` for ``Pipeline.run`` that asks on ``out`` and
    reads the answer from ``stdin``: True (go on) for Enter, False (stop) for ``q``, or
    for the end of input."""

    def review(phase: str, message: str, folder: Path | None) -> bool:
        lines = ["", f"[REVIEW] {phase}: {message}"]
        if folder is not None and str(folder) not in message:
            lines.append(f"  its folder: {folder}")
        lines += [f"  stop here and carry on later with: {resume_command}",
                  "Press Enter to go on, or q and Enter to stop: "]
        out.write("\n".join(lines))
        out.flush()
        answer = stdin.readline()
        if not answer:  # end of input (Ctrl-D): nobody will say go on
            out.write("\n")
            out.flush()
            return False
        return answer.strip().lower() not in STOP_ANSWERS

    return review
