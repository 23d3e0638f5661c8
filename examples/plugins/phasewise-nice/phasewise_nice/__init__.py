"""phasewise-nice: a phasewise executor that runs every phase in worker processes at a
lower CPU priority, pinned to chosen cores (``--executor nice -O nice=10 -O cpus=0``).

The executor is ``phasewise_nice.executor.NiceExecutor``; the plugin module phasewise
loads through the entry point ``nice`` is ``phasewise_nice.plugin``. Importing this
package imports neither.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
