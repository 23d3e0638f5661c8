"""phasewise: run pipelines of phases on any executor, and watch every line they print.

Importing phasewise loads no plugin and starts no process or thread. The public names
below are imported on first access, so a worker process that only needs
``phasewise.executors.worker`` does not pay for the rest.
"""

import importlib as _importlib
import typing as _typing

from phasewise.core import services as _services

if _typing.TYPE_CHECKING:
    from phasewise.core.actions import Action
    from phasewise.core.builder import PipelineBuilder
    from phasewise.core.errors import CycleError, PhasewiseError, PipelineError
    from phasewise.core.model import Phase, PhasePolicy, Pipeline, PipelineResult
    from phasewise.core.state import PhaseLog, PhaseStatus, PipelineState
    from phasewise.core.store import Store
    from phasewise.core.timeline import (
        get_active_pipeline,
        pipeline_to_timeline,
        set_active_pipeline,
    )
    from phasewise.core.view import (
        Key,
        PipelineViewState,
        Quit,
        SpecialKey,
        make_detail_reducer,
    )
    from phasewise.plugins.markers import hookimpl

__version__ = "0.1.0"

__all__ = [
    "Action",
    "CycleError",
    "Key",
    "Phase",
    "PhaseLog",
    "PhasePolicy",
    "PhaseStatus",
    "PhasewiseError",
    "Pipeline",
    "PipelineBuilder",
    "PipelineError",
    "PipelineResult",
    "PipelineState",
    "PipelineViewState",
    "Quit",
    "SpecialKey",
    "Store",
    "__version__",
    "get_active_pipeline",
    "hookimpl",
    "make_detail_reducer",
    "pipeline_to_timeline",
    "set_active_pipeline",
]

_WHERE = {
    "Action": "phasewise.core.actions",
    "CycleError": "phasewise.core.errors",
    "PhasewiseError": "phasewise.core.errors",
    "PipelineError": "phasewise.core.errors",
    "Phase": "phasewise.core.model",
    "PhasePolicy": "phasewise.core.model",
    "Pipeline": "phasewise.core.model",
    "PipelineResult": "phasewise.core.model",
    "PipelineBuilder": "phasewise.core.builder",
    "PhaseLog": "phasewise.core.state",
    "PhaseStatus": "phasewise.core.state",
    "PipelineState": "phasewise.core.state",
    "Store": "phasewise.core.store",
    "get_active_pipeline": "phasewise.core.timeline",
    "pipeline_to_timeline": "phasewise.core.timeline",
    "set_active_pipeline": "phasewise.core.timeline",
    "Key": "phasewise.core.view",
    "PipelineViewState": "phasewise.core.view",
    "Quit": "phasewise.core.view",
    "SpecialKey": "phasewise.core.view",
    "make_detail_reducer": "phasewise.core.view",
    "hookimpl": "phasewise.plugins.markers",
}


def __getattr__(name: str) -> _typing.Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'phasewise' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


def _lookup_executor(name: str) -> _typing.Any:
    from phasewise.plugins.manager import lookup_executor

    return lookup_executor(name)


def _open_workdir(pipeline: _typing.Any, workdir: _typing.Any, **how: _typing.Any) -> _typing.Any:
    from phasewise.durable.run import open_run

    return open_run(pipeline, workdir, **how)


def _temporary_folders() -> _typing.Any:
    from phasewise.durable.folders import TemporaryFolders

    return TemporaryFolders()


def _observe_run(pipeline: _typing.Any, store: _typing.Any, executor: str) -> _typing.Any:
    from phasewise.plugins.run_hooks import observe_run

    return observe_run(pipeline, store, executor)


# The composition root: core finds executors through the plugin registry, work
# directories through phasewise.durable, and shows runs to the plugins' run hooks; each
# is imported only when first used.
_services.set_executor_lookup(_lookup_executor)
_services.set_workdir_support(_open_workdir, _temporary_folders)
_services.set_run_observer(_observe_run)
