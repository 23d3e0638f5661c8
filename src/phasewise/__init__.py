"""phasewise: run pipelines of phases on any executor, and watch every line they print.

Importing phasewise loads no plugin and starts no process or thread; executors are
looked up (and plugins loaded) the first time a pipeline runs.
"""

from __future__ import annotations

from phasewise.core import runtime as _runtime
from phasewise.core.actions import Action
from phasewise.core.errors import CycleError, PhasewiseError, PipelineError
from phasewise.core.model import Phase, PhasePolicy, Pipeline, PipelineResult
from phasewise.core.state import PhaseLog, PhaseStatus, PipelineState
from phasewise.core.store import Store
from phasewise.plugins.manager import lookup_executor as _lookup_executor
from phasewise.plugins.markers import hookimpl

__version__ = "0.1.0"

__all__ = [
    "Action",
    "CycleError",
    "Phase",
    "PhaseLog",
    "PhasePolicy",
    "PhaseStatus",
    "PhasewiseError",
    "Pipeline",
    "PipelineError",
    "PipelineResult",
    "PipelineState",
    "Store",
    "__version__",
    "hookimpl",
]

# The composition root: core finds executors through the plugin registry.
_runtime.set_executor_lookup(_lookup_executor)
