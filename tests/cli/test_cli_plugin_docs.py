"""docs/plugins.md: every hook is documented, and its worked example really works when
installed as a distribution with a ``phasewise`` entry point."""

from __future__ import annotations

import inspect
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from phasewise.plugins import hookspecs


def _doc(repo: Path) -> str:
    return (repo / "docs" / "plugins.md").read_text(encoding="utf-8")


def _hook_names() -> list[str]:
    return [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
            if name.startswith("phasewise_")]


def test_every_hookspec_is_documented(repo: Path) -> None:
    doc = _doc(repo)
    names = _hook_names()
    assert names, "no hookspecs found"
    missing = [name for name in names if f"### `{name}(" not in doc]
    assert missing == [], f"hooks without a section in docs/plugins.md: {missing}"


def _code_block(doc: str, language: str, containing: str) -> str:
    blocks: list[str] = re.findall(rf"```{language}\n(.*?)```", doc, re.S)
    return next(block for block in blocks if containing in block)


def _install_example(repo: Path, site: Path) -> None:
    """Lay out the worked example as an installed distribution under ``site``."""
    package = site / "phasewise_logged"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("", encoding="utf-8")
    plugin = _code_block(_doc(repo), "python", "class LoggedExecutor")
    (package / "plugin.py").write_text(plugin, encoding="utf-8")
    pyproject = _code_block(_doc(repo), "toml", 'name = "phasewise-logged"')
    entry = re.search(r"\[project\.entry-points\.phasewise\]\n(.+)\n", pyproject)
    assert entry is not None
    name, value = (part.strip().strip('"') for part in entry.group(1).split("="))
    info = site / "phasewise_logged-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: phasewise-logged\nVersion: 0.1.0\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[phasewise]\n{name} = {value}\n", encoding="utf-8")


@pytest.mark.timeout(60)
def test_worked_example_is_a_working_plugin(
    repo: Path, tmp_path: Path, phasewise_cmd: list[str]
) -> None:
    site = tmp_path / "site"
    _install_example(repo, site)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(site), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "SITE_BUILD_ROOT": str(tmp_path)}

    listed = subprocess.run([*phasewise_cmd, "executors"], capture_output=True, text=True,
                            env=env, timeout=50)
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if line.startswith("logged "))
    assert row.split()[1] == "phasewise-logged"
    assert "A thread pool that logs every task it runs" in row

    ran = subprocess.run(
        [*phasewise_cmd, "run", str(repo / "examples" / "site_build.py"), "--json",
         "--executor", "logged", "-O", "prefix=[ci]"],
        capture_output=True, text=True, env=env, timeout=50,
    )
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["status"] == "completed"
    assert "[ci] submit discover (attempt 1)" in ran.stderr
    assert re.search(r"\[ci\] end write after [\d.]+s: ok", ran.stderr)
    assert "[ci] shutdown (cancel=False)" in ran.stderr

    rejected = subprocess.run(
        [*phasewise_cmd, "run", str(repo / "examples" / "site_build.py"), "--executor",
         "logged", "-O", "colour=red"], capture_output=True, text=True, env=env, timeout=50)
    assert rejected.returncode == 2
    assert "colour" in rejected.stderr and "Traceback" not in rejected.stderr

    disabled = subprocess.run([*phasewise_cmd, "executors"], capture_output=True, text=True,
                              env={**env, "PHASEWISE_DISABLE_PLUGINS": "logged"}, timeout=50)
    assert "logged" not in disabled.stdout
    assert "thread" in disabled.stdout
