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
from phasewise.core.errors import (
    ExecutorError,
    ExecutorOptionsError,
    PluginError,
    UnknownExecutorError,
)
from phasewise.executors import InlineExecutor
from phasewise.plugins import PluginWarning, Unavailable, hookspecs, manager
from phasewise.plugins.errors import ExecutorClashError, ExecutorUnavailableError
from phasewise.plugins.manager import (
    ENTRY_POINT_GROUP,
    ExecutorRegistry,
    _new_plugin_manager,
    executor_registry,
    lookup_executor,
)
from phasewise.plugins.records import PluginRecord
from phasewise.plugins.registry import ORIGIN_ATTRIBUTE

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


def test_two_plugins_registering_one_name_is_an_error_naming_both_when_asked_for() -> None:
    pm = _new_plugin_manager()
    pm.register(ExecutorPlugin({"dup": RecordingExecutor}), name="alpha")
    pm.register(ExecutorPlugin({"dup": RecordingExecutor}), name="beta")
    with pytest.warns(PluginWarning, match="'dup' is registered by two plugins"):
        registry = ExecutorRegistry(pm)
    assert "dup" not in registry.names()
    assert "inline" in registry.names()  # the others still serve
    with pytest.raises(ExecutorClashError) as info:
        registry.get("dup")
    assert isinstance(info.value, UnknownExecutorError)
    assert "'dup'" in str(info.value)
    assert "alpha" in str(info.value)
    assert "beta" in str(info.value)
    assert [p.name for p in info.value.plugins] == ["alpha", "beta"]
    assert [e.plugin for e in registry.clashes()["dup"]] == ["alpha", "beta"]


def test_a_plugin_claiming_a_builtin_name_makes_it_a_clash() -> None:
    pm = _new_plugin_manager()
    pm.register(ExecutorPlugin({"thread": RecordingExecutor}), name="usurper")
    with pytest.warns(PluginWarning, match="'thread' is registered by two plugins"):
        registry = ExecutorRegistry(pm)
    with pytest.raises(ExecutorClashError, match="builtin") as info:
        registry.get("thread")
    assert "usurper" in str(info.value)
    assert registry.get("inline").plugin == "builtin"


@pytest.mark.parametrize(("provided", "problem"), [
    (["not", "a", "dict"], "returned list, not a dict of name -> factory"),
    ({"x": "not callable"}, "returned a str for 'x', not a factory or Unavailable"),
    ({"": RecordingExecutor}, "returned the name '': executor names are non-empty strings"),
])
def test_a_hook_returning_something_else_fails_that_plugin_only(
    provided: Any, problem: str
) -> None:
    pm = _new_plugin_manager()
    plugin = ExecutorPlugin(provided)
    pm.register(plugin, name="wrong")
    pm.register(ExecutorPlugin({"fine": RecordingExecutor}), name="fine")
    with pytest.warns(PluginWarning, match="plugin 'wrong' failed to load") as seen:
        registry = ExecutorRegistry(pm)
    assert problem in str(seen[0].message)
    assert "fine" in registry.names()
    assert pm.get_plugin("wrong") is None  # unregistered: none of its hooks run
    record = next(r for r in pm.all_records() if r.name == "wrong")
    assert record.status == "failed"
    assert record.reason == f"its phasewise_executors() {problem}"


class RaisingHook:
    @phasewise.hookimpl
    def phasewise_executors(self) -> dict[str, Any]:
        raise RuntimeError("registry offline")


def test_a_hook_that_raises_fails_that_plugin_once_with_its_traceback() -> None:
    pm = _new_plugin_manager()
    pm.register(RaisingHook(), name="raising")
    with pytest.warns(PluginWarning) as seen:
        registry = ExecutorRegistry(pm)
    assert [str(w.message) for w in seen] == [
        "plugin 'raising' failed to load: its phasewise_executors() raised RuntimeError: "
        "registry offline"]
    record = seen[0].message.plugin  # type: ignore[union-attr]
    assert record is not None and "registry offline" in record.traceback
    assert "inline" in registry.names()
    with pytest.raises(UnknownExecutorError, match="is not available: plugin 'raising'"):
        registry.get("raising")


class BrokenExecutor(InlineExecutor):
    """Its submit() raises: the phase fails, naming the executor."""

    def submit(self, task, emit):
        raise ConnectionError("cluster unreachable")


class NotAFutureExecutor(InlineExecutor):
    """Its submit() returns something other than a Future."""

    def submit(self, task, emit):
        return "done, trust me"


@pytest.mark.timeout(30)
@pytest.mark.parametrize(("executor", "what"), [
    (BrokenExecutor, "submit() raised ConnectionError: cluster unreachable"),
    (NotAFutureExecutor, "submit() returned str, not a concurrent.futures.Future"),
])
def test_an_executor_whose_submit_breaks_fails_the_phase_naming_its_plugin(
    executor: type, what: str
) -> None:
    pm = _new_plugin_manager()
    pm.register(ExecutorPlugin({"broken": executor}), name="broken-plugin")
    registry = ExecutorRegistry(pm)
    pipeline = Pipeline("p", Phase("a", noop), Phase("b", noop, depends_on="a"))
    result = pipeline.run(executor="broken", executors=registry.factory)
    assert result.status == "failed"
    assert result.state.phase("a").error == (
        f"executor {executor.__name__} from plugin 'broken-plugin': {what}")
    assert result.state.phase("b").status == "cancelled"
    # given its factory itself, the run names the executor's class
    result = pipeline.run(executor="broken", executors=lambda name: executor)
    assert result.state.phase("a").error == (
        f"executor {executor.__module__}.{executor.__qualname__}: {what}")


def test_an_executor_error_from_submit_still_stops_the_run() -> None:
    class Stopping(InlineExecutor):
        def submit(self, task, emit):
            raise ExecutorError("stopping", "the cluster has gone")

    pipeline = Pipeline("p", Phase("a", noop))
    with pytest.raises(ExecutorError, match="the cluster has gone"):
        pipeline.run(executor="stopping", executors=lambda name: Stopping)


# ── factories ───────────────────────────────────────────────────────────────


def _exploding(max_workers: int | None = None) -> Any:
    raise OSError("no cluster here")


def _not_an_executor(max_workers: int | None = None) -> Any:
    return object()


def _strict(max_workers: int | None = None, size: int = 1) -> Any:
    return InlineExecutor(max_workers)


def _registry_with(factory: Any) -> ExecutorRegistry:
    pm = _new_plugin_manager()
    pm.register(ExecutorPlugin({"third": factory}), name="third-party")
    return ExecutorRegistry(pm)


def test_a_factory_that_raises_is_an_executor_error_naming_its_plugin() -> None:
    registry = _registry_with(_exploding)
    with pytest.raises(ExecutorError) as info:
        Pipeline("p", Phase("a", noop)).run(executor="third", executors=registry.factory)
    assert str(info.value) == ("executor 'third': its factory, from plugin 'third-party', "
                               "raised OSError: no cluster here")


def test_a_factory_returning_no_executor_is_an_executor_error() -> None:
    registry = _registry_with(_not_an_executor)
    with pytest.raises(ExecutorError, match="returned object, which has no submit"):
        Pipeline("p", Phase("a", noop)).run(executor="third", executors=registry.factory)


def test_options_a_factory_refuses_name_its_plugin() -> None:
    registry = _registry_with(_strict)
    with pytest.raises(ExecutorOptionsError) as info:
        Pipeline("p", Phase("a", noop)).run(executor="third", executors=registry.factory,
                                            executor_options={"colour": "red"})
    assert "colour" in str(info.value)
    assert "(plugin 'third-party')" in str(info.value)
    assert isinstance(info.value.cause, TypeError)


def test_executors_made_by_a_plugin_factory_carry_its_origin() -> None:
    registry = _registry_with(_strict)
    executor = registry.factory("third")(max_workers=1)
    assert getattr(executor, ORIGIN_ATTRIBUTE) == "plugin 'third-party'"
    assert registry.factory("third") is registry.factory("third")
    assert registry.factory("inline") is registry.get("inline").factory  # built-ins as-is


# ── unavailable executors ───────────────────────────────────────────────────


def test_an_executor_declared_unavailable_is_listed_and_refused() -> None:
    missing = Unavailable.unless_importable("phasewise_no_such_module", "pip install it")
    assert missing == Unavailable("phasewise_no_such_module is not installed",
                                  "pip install it")
    assert Unavailable.unless_importable("json") is None
    pm = _new_plugin_manager()
    pm.register(ExecutorPlugin({"ghost": missing}), name="ghosts")
    registry = ExecutorRegistry(pm)
    entry = next(e for e in registry.entries() if e.name == "ghost")
    assert entry.factory is None
    assert entry.description == ("unavailable: pip install it "
                                 "(phasewise_no_such_module is not installed)")
    assert "ghost" not in registry.names()
    with pytest.raises(ExecutorUnavailableError) as info:
        registry.get("ghost")
    assert str(info.value) == (
        "executor 'ghost' is not available: phasewise_no_such_module is not installed "
        "(it comes from plugin 'ghosts'); pip install it")
    assert info.value.plugin is not None and info.value.plugin.name == "ghosts"


# ── unknown executors ───────────────────────────────────────────────────────


def test_unknown_executor_suggests_the_closest_name() -> None:
    with pytest.raises(UnknownExecutorError) as info:
        lookup_executor("proces")
    assert str(info.value).startswith(
        "unknown executor 'proces' (did you mean 'process'?); installed executors: ")
    with pytest.raises(UnknownExecutorError) as info:
        lookup_executor("zzzzzz")
    assert "did you mean" not in str(info.value)


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
    with pytest.warns(PluginWarning, match="PHASEWISE_DISABLE_PLUGINS: no installed plugin "
                                           "is named 'other'"):
        pm = _new_plugin_manager()
    assert pm.is_blocked("builtin")
    assert pm.is_blocked("other")
    assert "inline" not in ExecutorRegistry(pm).names()


def test_an_installed_plugin_has_a_record_with_its_distribution_version_and_hooks(
    installed_plugin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(manager.DISABLE_ENV, raising=False)
    records = {r.name: r for r in _new_plugin_manager().all_records()}
    assert records["fake"] == PluginRecord("fake", installed_plugin, "phasewise-fake-plugin",
                                           "1.0", "loaded", hooks=("phasewise_executors",))
    assert records["builtin"].distribution == "phasewise"
    assert records["builtin"].version == phasewise.__version__
    assert records["fake"].origin == "plugin 'fake' (phasewise-fake-plugin 1.0)"


def test_a_plugin_that_fails_to_import_is_recorded_and_the_rest_load(
    installed_plugin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(manager.DISABLE_ENV, raising=False)
    monkeypatch.setitem(sys.modules, installed_plugin, None)  # importing it raises ImportError
    with pytest.warns(PluginWarning, match="plugin 'fake' .phasewise-fake-plugin 1.0. failed "
                                           "to load: ModuleNotFoundError"):
        pm = _new_plugin_manager()
    record = next(r for r in pm.all_records() if r.name == "fake")
    assert record.status == "failed" and record.reason.startswith("ModuleNotFoundError: ")
    assert "Traceback" in record.traceback
    registry = ExecutorRegistry(pm)
    assert "inline" in registry.names()
    with pytest.raises(ExecutorUnavailableError) as info:
        registry.get("fake")
    assert str(info.value).startswith(f"executor 'fake' is not available: {record.describe()}")


def test_block_plugins_blocks_by_name_and_reloads_when_the_names_change(
    installed_plugin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(manager.DISABLE_ENV, raising=False)
    manager.reset()
    try:
        manager.block_plugins(["fake"])
        assert manager.blocked_plugins() == {"fake": "-p no:fake"}
        assert "fake" not in executor_registry().names()
        blocked = next(r for r in manager.plugin_records() if r.name == "fake")
        assert (blocked.status, blocked.reason) == ("blocked", "-p no:fake")
        assert blocked.describe() == (
            "plugin 'fake' (phasewise-fake-plugin 1.0) is blocked by -p no:fake")
        pm = manager.plugin_manager()
        manager.block_plugins(["fake"])
        assert manager.plugin_manager() is pm  # the same names: nothing loads again
        manager.block_plugins([])
        assert "fake" in executor_registry().names()
    finally:
        manager.block_plugins([])
        manager.reset()


# ── observer hooks ──────────────────────────────────────────────────────────


class Observer:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    @phasewise.hookimpl
    def phasewise_run_start(self, pipeline, store, executor):
        self.calls.append(("start", (pipeline.name, executor, store.state.status)))

    @phasewise.hookimpl
    def phasewise_run_finish(self, pipeline, result, error):
        self.calls.append(("finish", (pipeline.name, result.status, error)))


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
    pm.hook.phasewise_run_finish(pipeline=pipeline, result=result, error=None)
    for observer in observers:
        assert observer.calls == [
            ("start", ("watched", "inline", "pending")),
            ("finish", ("watched", "completed", None)),
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


def _hook_section(hook: str) -> tuple[str, str]:
    """The heading and the text of ``hook``'s section in docs/plugins.md's reference."""
    docs = (REPO / "docs" / "plugins.md").read_text(encoding="utf-8")
    reference = docs.split("\n## Hook reference\n", 1)[1]
    for section in reference.split("\n### ")[1:]:
        heading, _, body = section.partition("\n")
        if heading.startswith(f"`{hook}("):
            return heading, body
    raise AssertionError(f"docs/plugins.md has no section for the {hook} hook")


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_section_in_docs_plugins_md_with_its_signature(hook: str) -> None:
    heading, body = _hook_section(hook)
    params = ", ".join(inspect.signature(getattr(hookspecs, hook)).parameters)
    assert heading == f"`{hook}({params})`"
    for part in ("**When:**", "**Combining:**", "**Tested by:**"):
        assert part in body, f"the section on {hook} says nothing under {part}"


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_implemented_by_the_tests_its_section_names(hook: str) -> None:
    _, body = _hook_section(hook)
    named = re.findall(r"`(tests/[\w/]+\.py)`", body.split("**Tested by:**", 1)[1])
    assert named, f"the section on {hook} names no test"
    for path in named:
        source = (REPO / path).read_text(encoding="utf-8")
        assert re.search(rf"@phasewise\.hookimpl\n\s*def {hook}\(", source), (
            f"{path} implements no {hook}")
