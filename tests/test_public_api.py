"""The public API of DESIGN §3: every name where it is promised, ``__all__`` kept honest."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
import types
from pathlib import Path

import pytest

import phasewise

SRC = Path(phasewise.__file__).resolve().parent

# DESIGN §3, verbatim: module -> names a user imports from it
PROMISED = {
    "phasewise": [
        "Pipeline", "Phase", "PhasePolicy", "Store", "Action", "PipelineState",
        "PhaseStatus", "PhaseLog", "PipelineResult", "PhasewiseError", "PipelineError",
        "CycleError", "hookimpl",
    ],
    "phasewise.core.actions": [
        "PIPELINE_START", "PIPELINE_COMPLETE", "PHASE_START", "PHASE_COMPLETE",
        "PHASE_FAILED", "PHASE_SKIPPED", "PHASE_RETRY", "PHASE_LOG", "PHASE_CANCELLED",
    ],
    "phasewise.core.saga": ["Put", "Call", "Fork", "All", "Delay", "Select"],
    "phasewise.core.timeline": [
        "pipeline_to_timeline", "set_active_pipeline", "get_active_pipeline",
    ],
    "phasewise.core.view": [
        "PipelineViewState", "make_detail_reducer", "Key", "SpecialKey", "Quit",
    ],
    "phasewise.executors": ["Executor", "InlineExecutor", "ThreadExecutor"],
}

# also importable from ``phasewise`` itself, as milo's code writes them (issue 16);
# each stays where DESIGN §3 puts it. Key, SpecialKey and Quit: milo's root has them.
ROOT_ALSO = {
    "PipelineViewState": "phasewise.core.view",
    "make_detail_reducer": "phasewise.core.view",
    "Key": "phasewise.core.view",
    "SpecialKey": "phasewise.core.view",
    "Quit": "phasewise.core.view",
    "pipeline_to_timeline": "phasewise.core.timeline",
    "set_active_pipeline": "phasewise.core.timeline",
    "get_active_pipeline": "phasewise.core.timeline",
}

ACTION_VALUES = {
    "PIPELINE_START": "@@PIPELINE_START",
    "PIPELINE_COMPLETE": "@@PIPELINE_COMPLETE",
    "PHASE_START": "@@PHASE_START",
    "PHASE_COMPLETE": "@@PHASE_COMPLETE",
    "PHASE_FAILED": "@@PHASE_FAILED",
    "PHASE_SKIPPED": "@@PHASE_SKIPPED",
    "PHASE_RETRY": "@@PHASE_RETRY",
    "PHASE_LOG": "@@PHASE_LOG",
    "PHASE_CANCELLED": "@@PHASE_CANCELLED",
}

# what `import`s and `from __future__` leave in a module namespace; not API
PLUMBING = {"annotations", "TYPE_CHECKING", "Any"}


@pytest.mark.parametrize(("module", "name"), [(m, n) for m, ns in PROMISED.items() for n in ns])
def test_promised_name_imports_from_where_design_says(module: str, name: str) -> None:
    namespace: dict[str, object] = {}
    exec(f"from {module} import {name}", namespace)  # the exact statement a user writes
    value = namespace[name]
    assert value is not None
    assert name in importlib.import_module(module).__all__


def test_top_level_names_are_the_core_objects() -> None:
    from phasewise.core import actions, errors, model, state, store
    from phasewise.plugins import markers

    assert phasewise.Pipeline is model.Pipeline
    assert phasewise.Store is store.Store
    assert phasewise.PipelineState is state.PipelineState
    assert phasewise.Action is actions.Action
    assert phasewise.CycleError is errors.CycleError
    assert phasewise.hookimpl is markers.hookimpl


@pytest.mark.parametrize(("name", "module"), sorted(ROOT_ALSO.items()))
def test_root_also_exports_what_milo_code_imports_from_the_top(name: str, module: str) -> None:
    namespace: dict[str, object] = {}
    exec(f"from phasewise import {name}", namespace)
    home = importlib.import_module(module)
    assert namespace[name] is getattr(home, name)  # the same object, not a copy
    assert name in phasewise.__all__
    assert name in home.__all__  # the old path keeps working


def test_every_root_name_is_lazy_and_comes_from_a_module_that_exports_it() -> None:
    where = phasewise._WHERE  # type: ignore[attr-defined]
    assert set(where) == set(phasewise.__all__) - {"__version__"}
    for name, module in where.items():
        home = importlib.import_module(module)
        assert name in home.__all__, f"{module} does not export {name}"
        assert getattr(phasewise, name) is getattr(home, name)


def test_import_phasewise_does_not_import_the_view_or_the_timeline() -> None:
    modules = sorted({*ROOT_ALSO.values(), "phasewise.core.model", "phasewise.core.state"})
    probe = (
        "import sys, phasewise; "
        f"print([m for m in {modules!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_action_names_have_their_at_at_values() -> None:
    from phasewise.core import actions

    for name, value in ACTION_VALUES.items():
        assert getattr(actions, name) == value


def test_error_hierarchy() -> None:
    assert issubclass(phasewise.PipelineError, phasewise.PhasewiseError)
    assert issubclass(phasewise.CycleError, phasewise.PipelineError)
    assert issubclass(phasewise.PhasewiseError, Exception)


def _public_attributes(module: types.ModuleType) -> list[str]:
    for name in getattr(module, "__all__", ()):
        getattr(module, name)  # resolve lazily imported names first
    return sorted(
        name for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and name not in PLUMBING
    )


def test_phasewise_all_is_sorted_and_complete() -> None:
    exported = phasewise.__all__
    assert exported == sorted(exported)
    assert len(set(exported)) == len(exported)
    public = _public_attributes(phasewise)
    assert sorted(set(exported) - {"__version__"}) == public
    assert set(PROMISED["phasewise"]) <= set(exported)
    assert set(ROOT_ALSO) <= set(exported)
    assert "__version__" in exported
    assert dir(phasewise) == sorted(exported)


def test_phasewise_executors_exports_the_protocol_and_builtins() -> None:
    import phasewise.executors as executors

    assert {"Executor", "InlineExecutor", "ThreadExecutor"} <= set(executors.__all__)
    assert executors.__all__ == sorted(executors.__all__)
    from phasewise.executors.inline import InlineExecutor
    from phasewise.executors.thread import ThreadExecutor

    assert executors.InlineExecutor is InlineExecutor
    assert executors.ThreadExecutor is ThreadExecutor
    assert isinstance(InlineExecutor(), executors.Executor)


def _public_module_files() -> list[Path]:
    files = []
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC).parts
        if any(p.startswith("_") and p != "__init__.py" for p in parts):
            continue  # private modules and packages
        if path.name == "__main__.py":
            continue
        files.append(path)
    return files


def _defines_all(path: Path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    if path.name == "__init__.py" and len(tree.body) == 1 and ast.get_docstring(tree):
        return True  # a package with only a docstring defines no names to declare
    for node in tree.body:
        targets = (
            node.targets if isinstance(node, ast.Assign)
            else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            return True
    return False


@pytest.mark.parametrize(
    "path", _public_module_files(), ids=lambda p: str(p.relative_to(SRC))
)
def test_every_public_module_has_all(path: Path) -> None:
    assert _defines_all(path), f"{path.relative_to(SRC)} has no __all__"


@pytest.mark.parametrize(
    "module",
    ["phasewise.core.graph", "phasewise.core.state", "phasewise.core.saga",
     "phasewise.core.errors", "phasewise.core.model", "phasewise.plugins.manager",
     "phasewise.plugins.hookspecs", "phasewise.executors.capture"],
)
def test_all_of_core_modules_names_real_objects(module: str) -> None:
    mod = importlib.import_module(module)
    for name in mod.__all__:
        assert hasattr(mod, name), f"{module}.__all__ names {name!r}, which does not exist"
