"""Fixtures for the CLI tests: a CliRunner, target files written into tmp_path, and the
command line of the installed ``phasewise`` script for subprocess tests."""

from __future__ import annotations

import shutil
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from phasewise.cli.main import cli

REPO = Path(__file__).resolve().parents[2]

HEADER = """\
from phasewise import Phase, PhasePolicy, Pipeline
"""


@pytest.fixture(autouse=True)
def _restore_sys_path(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Loading a target puts its directory on sys.path; keep that within one test."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield


@pytest.fixture(autouse=True)
def _in_tmp_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``phasewise run`` keeps each run under ./.phasewise: not in the repository."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def write_target(tmp_path: Path) -> Callable[..., Path]:
    """``write_target(body, name="pipe.py")``: a target file with ``HEADER`` prepended."""

    def write(body: str, name: str = "pipe.py", header: bool = True) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        text = textwrap.dedent(body)
        path.write_text((HEADER if header else "") + text, encoding="utf-8")
        return path

    return write


@pytest.fixture
def invoke() -> Callable[..., Result]:
    """``invoke(*args, env=None)``: run the CLI in-process; stdout and stderr kept apart."""
    runner = CliRunner()

    def run(*args: object, env: dict[str, str] | None = None) -> Result:
        return runner.invoke(cli, [str(a) for a in args], env=env, prog_name="phasewise")

    return run


@pytest.fixture
def phasewise_cmd() -> list[str]:
    """The installed console script, or ``python -m phasewise.cli.main`` without one."""
    script = shutil.which("phasewise")
    return [script] if script else [sys.executable, "-m", "phasewise.cli.main"]
