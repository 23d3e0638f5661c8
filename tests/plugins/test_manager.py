"""The plugin manager, the executor registry, and meta-tests for the hookspecs."""

from __future__ import annotations

import importlib.metadata
import inspect
import re
import sys
from pathlib import Path
from typing import Any, ClassVar

import pluggy
import pytest

import phasewise
from phasewise import Phase, Pipeline
from phasewise.core.errors import PluginError, UnknownExecutorError
from phasewise.executors import InlineExecutor
from phasewise.plugins import hookspecs, manager
from phasewise.plugins.manager import (
    ENTRY_POINT_GROUP,
    ExecutorRegistry,
    _new_plugin_manager,
    executor_registry,
    lookup_executor,
)

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent
HOOKS = sorted(hookspecs.__all__)


class RecordingExecutor(InlineExecutor):
    """Runs inline and remembers the phases it ran (for tests)."""

    ran: ClassVar[list[str]] = []
    last_options: ClassVar[dict[str, Any]] = {}

    def __init__(self, max_workers: int | None = None, **options: Any) -> None:
        super().__init__(max_workers)
        self.options = options
        RecordingExecutor.last_options = options

    def submit(self, task, emit):
        RecordingExecutor.ran.append(task.phase)
        return super().submit(task, emit)


class ExecutorPlugin:
    def __init__(self, executors: dict[str, Any]) -> None:
        self.executors = executors

    @phasewise.hookimpl
    def phasewise_executors(self) -> dict[str, Any]:
        return self.executors


def noop() -> str:
    return "ran"


# ── built-ins ───────────────────────────────────────────────────────────────


def test_builtins_come_from_the_packages_own_entry_point() -> None:
    points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    builtin = [ep for ep in points if ep.name == "builtin"]
    assert builtin, "phasewise's own entry point in group 'phasewise' is missing"
    assert builtin[0].value == "phasewise.executors.builtin"
    assert builtin[0].dist is not None and builtin[0].dist.name == "phasewise"


def test_builtin_executors_are_registered() -> None:
    registry = executor_registry()
    assert {"inline", "thread"} <= set(registry.names())
    assert registry.names()[:2] == ["inline", "thread"]  # built-ins first
    for name in ("inline", "thread"):
        entry = registry.get(name)
        assert entry.plugin == "builtin"
        assert entry.distribution == "phasewise"
        assert entry.description  # the factory's docstring, shown by `phasewise executors`
    assert lookup_executor("inline") is registry.get("inline").factory


def test_the_process_wide_manager_is_cached() -> None:
    assert manager.plugin_manager() is manager.plugin_manager()
    assert executor_registry() is executor_registry()


# ── registering at runtime ──────────────────────────────────────────────────


def test_a_plugin_registered_at_runtime_provides_an_executor() -> None:
    pm = _new_plugin_manager()
    pm.register(ExecutorPlugin({"recording": RecordingExecutor}), name="recording-plugin")
    registry = ExecutorRegistry(pm)
    assert "recording" in registry.names()
    assert registry.names()[0] == "inline"  # built-ins still first
    assert registry.get("recording").plugin == "recording-plugin"
    RecordingExecutor.ran = []
    pipeline = Pipeline("p", Phase("a", noop), Phase("b", noop, depends_on="a"))
    result = pipeline.run(
        executor="recording", executors=lambda name: registry.get(name).factory,
        executor_options={"colour": "blue"},
    )
    assert result.ok
    assert result.results == {"a": "ran", "b": "ran"}
    assert RecordingExecutor.ran == ["a", "b"]
    assert RecordingExecutor.last_options == {"colour": "blue"}


def test_two_plugins_registering_one_name_is_an_error_naming_both() -> None:
    pm = _new_plugin_manager()
    pm.register(ExecutorPlugin({"dup": RecordingExecutor}), name="alpha")
    pm.register(ExecutorPlugin({"dup": RecordingExecutor}), name="beta")
    with pytest.raises(PluginError) as info:
        ExecutorRegistry(pm)
    assert "'dup'" in str(info.value)
    assert "alpha" in str(info.value)
    assert "beta" in str(info.value)


def test_a_plugin_cannot_take_over_a_builtin_name() -> None:
    pm = _new_plugin_manager()
    pm.register(ExecutorPlugin({"thread": RecordingExecutor}), name="usurper")
    with pytest.raises(PluginError, match="builtin") as info:
        ExecutorRegistry(pm)
    assert "usurper" in str(info.value)


def test_a_hook_returning_a_non_dict_is_a_plugin_error() -> None:
    pm = _new_plugin_manager()
    pm.register(ExecutorPlugin(["not", "a", "dict"]), name="wrong")  # type: ignore[arg-type]
    with pytest.raises(PluginError, match="wrong"):
        ExecutorRegistry(pm)


class BrokenExecutor(InlineExecutor):
    """Its submit() raises: broken infrastructure, not a failed phase."""

    def submit(self, task, emit):
        raise ConnectionError("cluster unreachable")


@pytest.mark.timeout(30)
def test_an_executor_that_breaks_does_not_hang_the_run_and_its_error_surfaces() -> None:
    pm = _new_plugin_manager()
    pm.register(ExecutorPlugin({"broken": BrokenExecutor}), name="broken-plugin")
    registry = ExecutorRegistry(pm)
    pipeline = Pipeline("p", Phase("a", noop), Phase("b", noop, depends_on="a"))
    try:
        result = pipeline.run(
            executor="broken", executors=lambda name: registry.get(name).factory)
    except ConnectionError as exc:  # broken infrastructure may raise ...
        assert "cluster unreachable" in str(exc)
    else:  # ... or fail the phase it was given, as data
        assert result.status == "failed"
        assert "cluster unreachable" in result.state.phase("a").error
        assert result.state.phase("b").status == "cancelled"


# ── unknown executors ───────────────────────────────────────────────────────


def test_unknown_executor_lists_the_installed_ones() -> None:
    with pytest.raises(UnknownExecutorError) as info:
        lookup_executor("warp-drive")
    error = info.value
    assert isinstance(error, PluginError)
    assert "'warp-drive'" in str(error)
    for name in executor_registry().names():
        assert name in error.available
        assert name in str(error)


@pytest.mark.parametrize("where", ["run", "phase"])
def test_an_unknown_executor_fails_before_anything_runs(where: str) -> None:
    ran: list[str] = []
    phase_executor = "warp-drive" if where == "phase" else None
    pipeline = Pipeline(
        "p",
        Phase("first", lambda: ran.append("first")),
        Phase("second", lambda: ran.append("second"), executor=phase_executor),
    )
    with pytest.raises(UnknownExecutorError, match="warp-drive"):
        pipeline.run(executor="warp-drive" if where == "run" else "inline")
    assert ran == []


# ── entry points and PHASEWISE_DISABLE_PLUGINS ──────────────────────────────

PLUGIN_SOURCE = '''
import phasewise
from phasewise.executors import InlineExecutor


class FakeExecutor(InlineExecutor):
    """An executor from an installed third-party distribution."""


@phasewise.hookimpl
def phasewise_executors():
    return {"fake": FakeExecutor}
'''


@pytest.fixture
def installed_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A third-party distribution with a ``phasewise`` entry point, on sys.path."""
    module = "phasewise_fake_plugin"
    (tmp_path / f"{module}.py").write_text(PLUGIN_SOURCE)
    info = tmp_path / "phasewise_fake_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: phasewise-fake-plugin\nVersion: 1.0\n"
    )
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\nfake = {module}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, module, raising=False)
    yield module
    sys.modules.pop(module, None)


def test_an_installed_distribution_is_loaded_through_its_entry_point(
    installed_plugin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(manager.DISABLE_ENV, raising=False)
    registry = ExecutorRegistry(_new_plugin_manager())
    assert "fake" in registry.names()
    entry = registry.get("fake")
    assert entry.plugin == "fake"
    assert entry.distribution == "phasewise-fake-plugin"
    assert entry.description == "An executor from an installed third-party distribution."
    result = Pipeline("p", Phase("a", noop)).run(
        executor="fake", executors=lambda name: registry.get(name).factory)
    assert result.results == {"a": "ran"}


def test_disable_plugins_env_blocks_a_plugin(
    installed_plugin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(manager.DISABLE_ENV, "fake")
    pm = _new_plugin_manager()
    assert pm.is_blocked("fake")
    registry = ExecutorRegistry(pm)
    assert "fake" not in registry.names()
    assert "inline" in registry.names()
    with pytest.raises(UnknownExecutorError):
        registry.get("fake")


def test_disable_plugins_env_can_block_the_builtins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(manager.DISABLE_ENV, " builtin , other")
    pm = _new_plugin_manager()
    assert pm.is_blocked("builtin")
    assert pm.is_blocked("other")
    assert "inline" not in ExecutorRegistry(pm).names()


# ── observer hooks ──────────────────────────────────────────────────────────


class Observer:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    @phasewise.hookimpl
    def phasewise_run_start(self, pipeline, store, executor):
        self.calls.append(("start", (pipeline.name, executor, store.state.status)))

    @phasewise.hookimpl
    def phasewise_run_finish(self, pipeline, result):
        self.calls.append(("finish", (pipeline.name, result.status)))


def test_observer_hooks_reach_every_implementation() -> None:
    from phasewise import Store

    pm = _new_plugin_manager()
    observers = [Observer(), Observer()]
    for i, observer in enumerate(observers):
        pm.register(observer, name=f"observer-{i}")
    pipeline = Pipeline("watched", Phase("a", noop))
    store = Store(pipeline.build_reducer())
    pm.hook.phasewise_run_start(pipeline=pipeline, store=store, executor="inline")
    result = pipeline.run(executor="inline", store=store)
    pm.hook.phasewise_run_finish(pipeline=pipeline, result=result)
    for observer in observers:
        assert observer.calls == [
            ("start", ("watched", "inline", "pending")),
            ("finish", ("watched", "completed")),
        ]


def test_an_implementation_with_a_wrong_argument_is_rejected() -> None:
    class Wrong:
        @phasewise.hookimpl
        def phasewise_run_finish(self, pipeline, outcome):
            pass

    with pytest.raises(pluggy.PluginValidationError):
        _new_plugin_manager().register(Wrong())


# ── meta-tests (datasette-style) ────────────────────────────────────────────


def _hook_functions() -> dict[str, Any]:
    return {
        name: fn for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
        if name.startswith("phasewise_")
    }


def test_every_hookspec_is_exported_marked_and_documented() -> None:
    functions = _hook_functions()
    assert sorted(functions) == HOOKS
    for name, fn in functions.items():
        assert getattr(fn, "phasewise_spec", None) is not None, f"{name} is not a hookspec"
        doc = inspect.getdoc(fn) or ""
        assert len(doc.split()) >= 5, f"hookspec {name} needs a docstring"


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_test(hook: str) -> None:
    pattern = re.compile(rf"def {hook}\(")
    implementing = [
        path.relative_to(TESTS) for path in TESTS.rglob("*.py")
        if pattern.search(path.read_text(encoding="utf-8"))
    ]
    assert implementing, f"no test implements the {hook} hook"


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented_in_docs_plugins_md(hook: str) -> None:
    docs = REPO / "docs" / "plugins.md"
    if not docs.exists():
        pytest.skip("docs/plugins.md is not written yet")
    assert f"`{hook}(" in docs.read_text(encoding="utf-8"), f"{hook} is not in docs/plugins.md"
