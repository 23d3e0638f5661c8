"""The plugin phasewise loads through the entry point ``nice`` (group ``phasewise``).

Kept cheap to import: phasewise loads every installed plugin the first time any executor
is looked up, so the executor itself (and multiprocess under it) is imported only when a
run asks for ``nice``.
"""

from __future__ import annotations

from typing import Any

import phasewise

__all__ = ["nice", "phasewise_executors"]


def nice(**options: Any) -> Any:
    """Worker processes at a lower CPU priority, pinned to chosen cores (options: nice=, cpus=)."""
    from phasewise_nice.executor import NiceExecutor

    return NiceExecutor(**options)


@phasewise.hookimpl
def phasewise_executors() -> dict[str, Any]:
    return {"nice": nice}
