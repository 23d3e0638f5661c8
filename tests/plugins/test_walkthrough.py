"""docs/plugins.md's walk-through executor (``child``: a fresh process per phase) is written
on public names only, and passes the conformance suite, ``phasewise.testing``: imported
here with the executor given by its factory, and run from the command line against it
installed as a distribution with a ``phasewise`` entry point."""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from phasewise.executors import Task
from phasewise.testing import ExecutorUnderTest
from phasewise.testing.conformance import *  # noqa: F403
from phasewise.testing.handlers import const

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs" / "plugins.md"
MODULE = "phasewise_child.plugin"


def _code_block(language: str, containing: str) -> str:
    blocks: list[str] = re.findall(rf"```{language}\n(.*?)```", DOCS.read_text("utf-8"), re.S)
    return next(block for block in blocks if containing in block)


def walkthrough_source() -> str:
    return _code_block("python", "class ChildProcessExecutor")


def install(site: Path) -> None:
    """Lay the walk-through out under ``site`` as the installed distribution
    phasewise-child, whose entry point (group ``phasewise``) is ``child``."""
    package = site / "phasewise_child"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "plugin.py").write_text(walkthrough_source(), encoding="utf-8")
    info = site / "phasewise_child-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: phasewise-child\nVersion: 0.1.0\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[phasewise]\nchild = {MODULE}\n", encoding="utf-8")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("site")
    install(site)
    return site


@pytest.fixture(scope="module")
def walkthrough(site: Path) -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location(MODULE, site / "phasewise_child" / "plugin.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[MODULE] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(MODULE, None)


@pytest.fixture(scope="module")
def phasewise_executor(walkthrough: ModuleType) -> ExecutorUnderTest:
    """The conformance suite imported above runs on the walk-through's executor."""
    return ExecutorUnderTest("child", walkthrough.child)


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def test_the_walkthrough_uses_public_names_only() -> None:
    tree = ast.parse(walkthrough_source())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.module is not None and node.level == 0
            parts = [*node.module.split("."), *(alias.name for alias in node.names)]
            assert not [p for p in parts if _private(p)], ast.unparse(node)
            if node.module.startswith("phasewise"):
                imported |= {alias.asname or alias.name for alias in node.names}
        elif isinstance(node, ast.Import):
            for alias in node.names:
                assert not [p for p in alias.name.split(".") if _private(p)], alias.name
                imported.add(alias.asname or alias.name)
    for node in ast.walk(tree):  # nor a private attribute of anything imported
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in imported):
            assert not _private(node.attr), ast.unparse(node)
    for string in (n.value for n in ast.walk(tree)
                   if isinstance(n, ast.Constant) and isinstance(n.value, str)):
        assert "import _" not in string and "._" not in string.replace("__", ""), string


def test_the_walkthrough_shuts_down_once_and_refuses_work_after(walkthrough: ModuleType) -> None:
    with walkthrough.child(max_workers=1) as executor:
        pass
    executor.shutdown()
    executor.shutdown(cancel=True)
    with pytest.raises(RuntimeError, match="after shutdown"):
        executor.submit(Task("a", const), lambda event: None)


def _env(site: Path) -> dict[str, str]:
    path = os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])])
    return {**os.environ, "PYTHONPATH": path}


def _phasewise() -> list[str]:
    script = shutil.which("phasewise")
    return [script] if script else [sys.executable, "-m", "phasewise.cli.main"]


@pytest.mark.timeout(120)
def test_the_installed_walkthrough_passes_the_suite_from_the_command_line(
    site: Path, tmp_path: Path
) -> None:
    env = _env(site)
    listed = subprocess.run([*_phasewise(), "executors"], capture_output=True, text=True,
                            env=env, timeout=60)
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if line.startswith("child "))
    assert row.split()[1] == "phasewise-child"

    some = ("traceback or lines_reach or timeout_fails or fail_fast_cancels or large_results"
            " or stop_keeps")
    ran = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p",
         "phasewise.testing", "--pyargs", "phasewise.testing.conformance",
         "--phasewise-executor", "child", "-k", some],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=110)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert re.search(r"\b6 passed\b", ran.stdout), ran.stdout
