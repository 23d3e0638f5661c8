"""Layering: core imports nothing from executors, plugins, durable or cli; the modules of
a part import each other one way; importing phasewise is cheap and has no side effects
(no heavy imports, no thread, no plugin loading)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import phasewise

SRC = Path(phasewise.__file__).resolve().parent
CORE = SRC / "core"
FORBIDDEN = ("phasewise.executors", "phasewise.plugins", "phasewise.cli", "phasewise.durable")


def _imported_modules(source: str, package: str) -> list[tuple[int, str]]:
    """Every module some source imports, anywhere in it (functions and TYPE_CHECKING
    included), relative imports resolved against ``package``, plus string arguments of
    import_module/__import__."""
    tree = ast.parse(source)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.Call):
            fn = node.func
            name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
            if name in ("import_module", "__import__") and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    found.append((node.lineno, arg.value))
    return found


def _violations(source: str, package: str = "phasewise.core") -> list[tuple[int, str]]:
    return sorted({
        (line, module)
        for line, module in _imported_modules(source, package)
        if any(module == f or module.startswith(f + ".") for f in FORBIDDEN)
    })


@pytest.mark.parametrize("path", sorted(CORE.glob("*.py")), ids=lambda p: p.name)
def test_core_imports_nothing_from_executors_plugins_or_cli(path: Path) -> None:
    assert _violations(path.read_text(encoding="utf-8")) == []


def test_the_scanner_catches_every_form() -> None:
    source = (
        "import phasewise.executors.thread\n"
        "from phasewise.plugins import manager\n"
        "from phasewise import cli\n"
        "from ..executors import inline\n"
        "def later():\n"
        "    import phasewise.cli.main\n"
        "    importlib.import_module('phasewise.plugins.manager')\n"
        "from phasewise.core import model\n"
    )
    lines = sorted({line for line, _ in _violations(source)})
    assert lines == [1, 2, 3, 4, 6, 7]


SCRIPT = r"""
import json, sys, threading
import phasewise

def heavy():
    roots = {"multiprocess", "dask", "distributed", "rich", "click"}
    return sorted({m.split(".")[0] for m in sys.modules} & roots)

report = {"after_import": heavy(), "threads_after_import": threading.active_count(),
          "cli_after_import": "phasewise.cli" in sys.modules,
          "executors_after_import": sorted(
              m for m in sys.modules if m.startswith(("phasewise.executors",
                                                      "phasewise.plugins.manager")))}
for name in phasewise.__all__:
    getattr(phasewise, name)
report["after_names"] = heavy()
report["cli_after_names"] = "phasewise.cli" in sys.modules
report["threads_after_names"] = threading.active_count()
import phasewise.plugins.manager as manager
report["plugin_managers"] = manager.plugin_manager.cache_info().currsize
report["registries"] = manager.executor_registry.cache_info().currsize
print(json.dumps(report))
"""


def test_import_phasewise_has_no_side_effects() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    report = json.loads(out.strip().splitlines()[-1])
    assert report["threads_after_import"] == 1
    assert report["threads_after_names"] == 1
    assert report["plugin_managers"] == 0, "import phasewise loaded plugins"
    assert report["registries"] == 0
    assert report["executors_after_import"] == []
    for stage in ("after_import", "after_names"):
        loaded = set(report[stage])
        assert not loaded & {"multiprocess", "dask", "distributed", "rich"}, stage
        cli = report["cli_after_import" if stage == "after_import" else "cli_after_names"]
        if "click" in loaded:
            assert cli, f"click was imported ({stage}) without phasewise.cli"


PARTS = ("core", "executors", "plugins", "durable", "cli")


def _import_graph(part: str) -> dict[str, set[str]]:
    """Module -> the modules of the same part it imports (anywhere in it, TYPE_CHECKING
    and function-level imports included)."""
    modules: dict[str, tuple[Path, str]] = {}  # module -> its file, the package it is in
    for path in (SRC / part).rglob("*.py"):
        parts = ["phasewise", *path.relative_to(SRC).with_suffix("").parts]
        if parts[-1] != "__init__":
            modules[".".join(parts)] = (path, ".".join(parts[:-1]))
        elif len(parts) > 3:  # a subpackage is its __init__ (the part's own is left out)
            modules[".".join(parts[:-1])] = (path, ".".join(parts[:-1]))
    return {
        name: {m for _, m in _imported_modules(path.read_text(encoding="utf-8"), package)
               if m in modules and m != name}
        for name, (path, package) in modules.items()
    }


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    from phasewise.core.graph import find_cycle

    return find_cycle(sorted(graph), {name: sorted(deps) for name, deps in graph.items()})


@pytest.mark.parametrize("part", PARTS)
def test_the_modules_of_a_part_import_each_other_one_way(part: str) -> None:
    assert _cycle(_import_graph(part)) is None


def test_the_circle_check_sees_a_circle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
