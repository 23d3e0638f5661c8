"""The example third-party executor, examples/plugins/phasewise-nice, end to end: pip
installs it from its folder into a site directory of this module's own, lists it, runs
phasewise's behavioural suite against it by name (``--phasewise-executor nice``), and
checks that a phase really runs at the niceness and on the CPUs asked for."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from plugin_distributions import phasewise_command, pip_install, private_names, site_env

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "plugins" / "phasewise-nice"

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="needs CPU affinity"),
]

WHERE = """
import os
from phasewise import Phase, Pipeline

def where():
    return {"nice": os.getpriority(os.PRIO_PROCESS, 0),
            "cpus": sorted(os.sched_getaffinity(0)), "pid": os.getpid()}

pipeline = Pipeline("where", Phase("first", where), Phase("second", where))
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """phasewise-nice, pip-installed from its folder."""
    site = tmp_path_factory.mktemp("nice-site")
    pip_install(site, EXAMPLE)
    assert (site / "phasewise_nice" / "executor.py").exists()
    return site


def run(site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*phasewise_command(), *args], capture_output=True, text=True,
                          env=site_env(site), cwd=cwd, timeout=120)


def test_the_example_is_a_distribution_of_its_own() -> None:
    pyproject = (EXAMPLE / "pyproject.toml").read_text(encoding="utf-8")
    assert 'name = "phasewise-nice"' in pyproject
    assert re.search(r'\[project\.entry-points\.phasewise\]\nnice = "phasewise_nice\.plugin"',
                     pyproject)
    assert (EXAMPLE / "README.md").exists()


def test_the_example_uses_public_names_only() -> None:
    for path in sorted((EXAMPLE / "phasewise_nice").glob("*.py")):
        assert private_names(path.read_text(encoding="utf-8")) == [], path.name


def test_the_walkthrough_in_docs_plugins_md_quotes_the_example() -> None:
    docs = (REPO / "docs" / "plugins.md").read_text(encoding="utf-8")
    section = docs.split("\n## 8. ", 1)[1].split("\n## ", 1)[0]
    source = "\n".join(path.read_text(encoding="utf-8") for path in
                       sorted((EXAMPLE / "phasewise_nice").glob("*.py")))
    lines = {line.rstrip() for line in source.splitlines()}
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) >= 2
    for block in blocks:
        for line in block.splitlines():
            code = re.sub(r"\s+# .*$", "", line).rstrip()
            if code:
                assert any(known.startswith(code) for known in lines), line
    toml = re.findall(r"```toml\n(.*?)```", section, re.S)
    pyproject = (EXAMPLE / "pyproject.toml").read_text(encoding="utf-8")
    assert toml and all(block in pyproject for block in toml)


def test_installed_it_is_listed_with_its_distribution_and_version(
    site: Path, tmp_path: Path
) -> None:
    listed = run(site, "executors", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if line.startswith("nice "))
    assert row.split()[1:3] == ["phasewise-nice", "0.1.0"]
    assert "lower CPU priority, pinned to chosen cores" in row
    plugins = run(site, "plugins", cwd=tmp_path)
    row = next(line for line in plugins.stdout.splitlines() if line.startswith("nice "))
    assert row.split()[1:] == ["phasewise-nice", "0.1.0", "loaded", "phasewise_executors"]


def test_a_phase_runs_at_the_niceness_and_on_the_cpus_asked_for(
    site: Path, tmp_path: Path
) -> None:
    (tmp_path / "where.py").write_text(WHERE, encoding="utf-8")
    cpu = min(os.sched_getaffinity(0))
    ran = run(site, "run", "where.py", "--json", "--executor", "nice", "-O", "nice=7",
              "-O", f"cpus={cpu}", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    results = json.loads(ran.stdout)["results"]
    expected = min(19, os.getpriority(os.PRIO_PROCESS, 0) + 7)
    for phase in ("first", "second"):
        assert results[phase]["nice"] == expected
        assert results[phase]["cpus"] == [cpu]
        assert results[phase]["pid"] != os.getpid()


@pytest.mark.parametrize(("option", "why"), [
    ("nice=-5", "nice must be a whole number from 0 to 19"),
    ("cpus=100000", "is not available here"),
    ("colour=red", "colour"),
])
def test_a_bad_option_is_exit_2_naming_the_plugin(
    site: Path, tmp_path: Path, option: str, why: str
) -> None:
    (tmp_path / "where.py").write_text(WHERE, encoding="utf-8")
    ran = run(site, "run", "where.py", "--executor", "nice", "-O", option, cwd=tmp_path)
    assert ran.returncode == 2, ran.stderr
    assert why in ran.stderr
    assert "plugin 'nice' (phasewise-nice 0.1.0)" in ran.stderr
    assert "Traceback" not in ran.stderr


def test_the_behavioural_suite_passes_on_it_by_name(site: Path, tmp_path: Path) -> None:
    ran = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p",
         "phasewise.testing", "--pyargs", "phasewise.testing.conformance",
         "--phasewise-executor", "nice"],
        capture_output=True, text=True, env=site_env(site), cwd=tmp_path, timeout=280)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    passed = re.search(r"\b(\d+) passed\b", ran.stdout)
    assert passed is not None and int(passed.group(1)) >= 30, ran.stdout
    assert "failed" not in ran.stdout.splitlines()[-1]


def test_its_own_tests_pass_against_the_installed_distribution(
    site: Path, tmp_path: Path
) -> None:
    ran = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "--rootdir", str(tmp_path), str(EXAMPLE / "tests")],
        capture_output=True, text=True, env=site_env(site), cwd=tmp_path, timeout=280)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert re.search(r"\b\d+ passed\b", ran.stdout), ran.stdout
