"""``phasewise run --dry-run``: what would run, what is cached, what --resume would skip,
with nothing run and the work directory's lock left alone."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from phasewise.durable.workdir import Workdir

PIPELINE = """
import os
from pathlib import Path

LOG = Path(os.environ["DRY_LOG"])

def _ran(name):
    with LOG.open("a") as log:
        log.write(name + "\\n")

def fetch(params):
    _ran("fetch")
    return params["n"]

def double(context):
    _ran("double")
    return context["fetch"] * 2

def report(context):
    _ran("report")
    if os.environ.get("DRY_FAIL"):
        raise RuntimeError("report failed")
    return context["double"] + 1

def strict(params):
    return params["strict"]

pipeline = Pipeline(
    "dry",
    Phase("fetch", fetch, cache="1h"),
    Phase("double", double, depends_on="fetch", cache=True),
    Phase("report", report, depends_on="double", when=strict, review="look"),
    params={"n": 2, "strict": True},
)
"""


def _plan(result: Result) -> dict[str, str]:
    """Phase -> what it would do, from the dry run's table."""
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    rule = next(i for i, line in enumerate(lines) if re.fullmatch(r"-+( +-+)+", line))
    plan = {}
    for line in lines[rule + 1:]:
        if not line.strip():
            break
        _, name, would = re.split(r"\s{2,}", line.strip(), maxsplit=2)
        plan[name] = would
    return plan


@pytest.fixture(autouse=True)
def _log(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DRY_LOG", str(tmp_path / "ran.log"))
    monkeypatch.delenv("DRY_FAIL", raising=False)


def _setup(write_target: Callable[..., Path], tmp_path: Path) -> tuple[Path, Path]:
    return write_target(PIPELINE), tmp_path / "ran.log"


def _ran(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


def test_a_dry_run_runs_nothing_and_creates_nothing(
    invoke: Callable[..., Result], write_target: Callable[..., Path], tmp_path: Path
) -> None:
    path, log = _setup(write_target, tmp_path)
    result = invoke("run", path, "--dry-run", "--workdir", "w")
    plan = _plan(result)
    assert list(plan) == ["fetch", "double", "report"]
    assert plan["fetch"] == "run (no cached result for its inputs)"
    assert plan["double"] == "run (nothing is cached for it yet)"
    assert plan["report"].startswith("if its condition strict holds: run")
    assert "pause for review" in plan["report"]
    assert "nothing is run" in result.stdout and "(not created yet)" in result.stdout
    assert 'params: n=2, strict=true' in result.stdout
    assert result.stdout.rstrip().endswith("3 would run")
    assert _ran(log) == []
    assert not (tmp_path / "w").exists()


def test_a_dry_run_sees_the_cache_and_what_resume_would_skip(
    invoke: Callable[..., Result], write_target: Callable[..., Path], tmp_path: Path
) -> None:
    path, log = _setup(write_target, tmp_path)
    failed = invoke("run", path, "--workdir", "w", "-e", "inline", env={"DRY_FAIL": "1"})
    assert failed.exit_code == 1, failed.output
    assert _ran(log) == ["fetch", "double", "report"]
    plan = _plan(invoke("run", path, "--dry-run", "--workdir", "w"))
    assert plan["fetch"].startswith("use its cached result (stored ")
    # its input is fetch's result, known only once fetch has run (or resume keeps it)
    assert plan["double"] == ("use its cached result if its inputs are unchanged "
                              "(1 result stored), else run")
    changed = _plan(invoke("run", path, "--dry-run", "--workdir", "w", "--param", "n=5"))
    assert changed["fetch"] == "run (no cached result for its inputs)"  # params are inputs
    resumed = _plan(invoke("run", path, "--dry-run", "--workdir", "w", "--resume"))
    assert resumed["fetch"].startswith("not run: it completed in the last run")
    assert resumed["double"].startswith("not run: it completed in the last run")
    assert resumed["report"].startswith("if its condition strict holds: run")
    again = _plan(invoke("run", path, "--dry-run", "--workdir", "w", "--resume",
                         "--param", "n=5"))
    assert again["fetch"].startswith("run again: its definition changed")
    assert again["double"].endswith("else run again: its dependency 'fetch' runs again")
    no_cache = _plan(invoke("run", path, "--dry-run", "--workdir", "w", "--no-cache"))
    assert no_cache["fetch"] == "run (--no-cache)"
    assert _ran(log) == ["fetch", "double", "report"]  # none of the dry runs ran a phase


def test_a_dry_run_with_resume_knows_the_inputs_of_a_kept_phases_dependants(
    invoke: Callable[..., Result], write_target: Callable[..., Path]
) -> None:
    body = """
        def first():
            return 1

        def second(context):
            return context["first"] + 1

        pipeline = Pipeline("chain", Phase("first", first),
                            Phase("second", second, depends_on="first", cache=True,
                                  TIMEOUT))
        """
    path = write_target(body.replace("TIMEOUT", "timeout=30"))
    assert invoke("run", path, "--workdir", "w").exit_code == 0
    # a new timeout: resume runs second again, but its cache key (code, inputs) is the same
    write_target(body.replace("TIMEOUT", "timeout=60"))
    plan = _plan(invoke("run", path, "--dry-run", "--workdir", "w", "--resume"))
    assert plan["first"].startswith("not run")
    assert plan["second"].startswith("use its cached result (stored ")  # first is kept


def test_a_dry_run_leaves_the_lock_alone(
    invoke: Callable[..., Result], write_target: Callable[..., Path], tmp_path: Path
) -> None:
    path, _ = _setup(write_target, tmp_path)
    place = Workdir(tmp_path / "w")
    place.create()
    place.lock()  # a run in progress
    try:
        plan = _plan(invoke("run", path, "--dry-run", "--workdir", "w"))
        assert list(plan) == ["fetch", "double", "report"]
    finally:
        place.unlock()


def test_a_dry_run_with_nothing_to_resume_says_so(
    invoke: Callable[..., Result], write_target: Callable[..., Path], tmp_path: Path
) -> None:
    path, _ = _setup(write_target, tmp_path)
    result = invoke("run", path, "--dry-run", "--resume", "--workdir", "w")
    assert "nothing to resume" in result.stdout
    assert set(_plan(result)) == {"fetch", "double", "report"}


def test_a_dry_run_checks_its_input_like_a_run(
    invoke: Callable[..., Result], write_target: Callable[..., Path], tmp_path: Path
) -> None:
    path, _ = _setup(write_target, tmp_path)
    for args, needle in ((("--param", "zzz=1"), "'zzz'"), (("-e", "warp"), "'warp'"),
                         (("--json",), "--dry-run"), (("--pause-after", "nope"), "nope")):
        result = invoke("run", path, "--dry-run", *args)
        assert result.exit_code == 2, result.output
        assert needle in result.stderr and "Traceback" not in result.output
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "pipeline-state.json").write_text("{garbage")
    broken = invoke("run", path, "--dry-run", "--resume", "--workdir", "w")
    assert broken.exit_code == 2, broken.output
    assert "pipeline-state.json" in broken.stderr and "Traceback" not in broken.output
