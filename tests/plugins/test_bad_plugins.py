"""A broken plugin never breaks a run that does not need it: real distributions, built
here and pip-installed into a site directory of this module's own, each broken in one
way, and the ``phasewise`` command run beside them.

    broken      its module raises ImportError on import
    raising     its phasewise_executors() raises
    explode     its factory raises
    nonfuture   its executors' submit() returns a str, or raises
    twin_a/_b   two distributions, one executor name
    blockme     a good plugin, to block with -p no:blockme
    unavail     an executor declared Unavailable, with what to install
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from plugin_distributions import build_wheel, phasewise_command, pip_install, site_env

pytestmark = pytest.mark.timeout(120)

PLUGINS: dict[str, tuple[str, str]] = {  # distribution: (entry point, its module's source)
    "phasewise-broken": ("broken", """
        import phasewise_no_such_backend  # not installed: ImportError
    """),
    "phasewise-raising": ("raising", """
        import phasewise

        @phasewise.hookimpl
        def phasewise_executors():
            raise RuntimeError("the registry of this plugin is broken")
    """),
    "phasewise-explode": ("explode", """
        import phasewise

        def explode(**options):
            \"\"\"An executor whose factory cannot make it.\"\"\"
            raise RuntimeError("cluster down")

        @phasewise.hookimpl
        def phasewise_executors():
            return {"explode": explode}
    """),
    "phasewise-nonfuture": ("nonfuture", """
        import phasewise
        from phasewise.executors import BaseExecutor

        class NotAFuture(BaseExecutor):
            \"\"\"Its submit() returns a str.\"\"\"
            def __init__(self, max_workers=None):
                pass
            def start(self, task, emit):
                return "not a future"

        class RaisingSubmit(BaseExecutor):
            \"\"\"Its submit() raises.\"\"\"
            def __init__(self, max_workers=None):
                pass
            def start(self, task, emit):
                raise ConnectionError("cluster unreachable")

        @phasewise.hookimpl
        def phasewise_executors():
            return {"nonfuture": NotAFuture, "submitraise": RaisingSubmit}
    """),
    "phasewise-twin-a": ("twin_a", """
        import phasewise
        from phasewise.executors import InlineExecutor

        @phasewise.hookimpl
        def phasewise_executors():
            return {"twin": InlineExecutor}
    """),
    "phasewise-twin-b": ("twin_b", """
        import phasewise
        from phasewise.executors import InlineExecutor

        @phasewise.hookimpl
        def phasewise_executors():
            return {"twin": InlineExecutor}
    """),
    "phasewise-blockme": ("blockme", """
        import phasewise
        from phasewise.executors import InlineExecutor

        def blockme(**options):
            \"\"\"A good executor, to block.\"\"\"
            return InlineExecutor(**options)

        @phasewise.hookimpl
        def phasewise_executors():
            return {"blockme": blockme}
    """),
    "phasewise-unavail": ("unavail", """
        import phasewise
        from phasewise.plugins import Unavailable

        @phasewise.hookimpl
        def phasewise_executors():
            missing = Unavailable.unless_importable(
                "ghostlib", "pip install 'phasewise-unavail[ghost]'")
            return {"ghost": missing or (lambda **options: None)}
    """),
}

DEMO = """
from phasewise import Phase, Pipeline

def hello():
    return "hello"

pipeline = Pipeline("demo", Phase("hello", hello))
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every distribution above, pip-installed into one site directory."""
    build = tmp_path_factory.mktemp("wheels")
    wheels = []
    for dist, (entry_point, source) in PLUGINS.items():
        module = dist.replace("-", "_")
        wheels.append(build_wheel(build, dist, {f"{module}.py": textwrap.dedent(source)},
                                  {entry_point: module}))
    site = tmp_path_factory.mktemp("site")
    pip_install(site, *wheels)
    return site


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    path = tmp_path / "demo.py"
    path.write_text(DEMO, encoding="utf-8")
    return path


def phasewise(site: Path, *args: str, cwd: Path | None = None,
              **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*phasewise_command(), *args], capture_output=True, text=True,
                          env=site_env(site, **env), cwd=cwd, timeout=90)


def warnings_in(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("phasewise: warning:")]


# ── a run that needs none of them goes on ───────────────────────────────────


def test_a_run_on_a_good_executor_goes_on_with_one_warning_per_broken_plugin(
    site: Path, demo: Path, tmp_path: Path
) -> None:
    ran = phasewise(site, "run", str(demo), "--executor", "thread", "--json", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["status"] == "completed"
    assert "Traceback" not in ran.stderr
    lines = warnings_in(ran.stderr)
    broken = [line for line in lines if "'broken'" in line]
    assert broken == [
        "phasewise: warning: plugin 'broken' (phasewise-broken 1.0) failed to load: "
        "ModuleNotFoundError: No module named 'phasewise_no_such_backend'"]
    raising = [line for line in lines if "'raising'" in line]
    assert raising == [
        "phasewise: warning: plugin 'raising' (phasewise-raising 1.0) failed to load: its "
        "phasewise_executors() raised RuntimeError: the registry of this plugin is broken"]
    clash = [line for line in lines if "'twin'" in line]
    assert len(clash) == 1
    assert "phasewise-twin-a 1.0" in clash[0] and "phasewise-twin-b 1.0" in clash[0]
    assert len(lines) == 3, lines


def test_verbose_adds_the_traceback_of_a_plugin_that_failed(
    site: Path, demo: Path, tmp_path: Path
) -> None:
    ran = phasewise(site, "run", str(demo), "-v", "--executor", "thread", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    after = ran.stderr.split("plugin 'broken' (phasewise-broken 1.0) failed to load", 1)[1]
    assert "Traceback (most recent call last)" in after
    assert "import phasewise_no_such_backend" in after


def test_a_library_run_warns_with_a_phasewise_warning_and_goes_on(site: Path) -> None:
    script = (
        "import warnings\n"
        "from phasewise import Phase, Pipeline\n"
        "from phasewise.core.errors import PhasewiseWarning\n"
        "with warnings.catch_warnings(record=True) as seen:\n"
        "    warnings.simplefilter('always')\n"
        "    result = Pipeline('p', Phase('a', lambda: 1)).run(executor='thread')\n"
        "assert result.ok\n"
        "for w in seen:\n"
        "    assert issubclass(w.category, PhasewiseWarning)\n"
        "    print(w.message)\n")
    ran = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=site_env(site), timeout=60)
    assert ran.returncode == 0, ran.stderr
    assert "plugin 'broken' (phasewise-broken 1.0) failed to load" in ran.stdout
    assert "plugin 'raising' (phasewise-raising 1.0) failed to load" in ran.stdout


# ── asking for what a broken plugin would provide ───────────────────────────


@pytest.mark.parametrize("name", ["broken", "raising"])
def test_asking_for_the_executor_of_a_plugin_that_failed_is_exit_2_with_its_message(
    site: Path, demo: Path, tmp_path: Path, name: str
) -> None:
    ran = phasewise(site, "run", str(demo), "--executor", name, cwd=tmp_path)
    assert ran.returncode == 2, ran.stderr
    warning = next(line for line in warnings_in(ran.stderr) if f"'{name}'" in line)
    message = warning.removeprefix("phasewise: warning: ")
    error = next(line for line in ran.stderr.splitlines() if line.startswith("Error:"))
    assert error.startswith(f"Error: executor {name!r} is not available: {message}")
    assert "Traceback" not in ran.stderr


def test_a_factory_that_raises_fails_the_run_naming_its_plugin(
    site: Path, demo: Path, tmp_path: Path
) -> None:
    ran = phasewise(site, "run", str(demo), "--executor", "explode", cwd=tmp_path)
    assert ran.returncode == 2, ran.stderr
    assert ("Error: executor 'explode': its factory, from plugin 'explode' "
            "(phasewise-explode 1.0), raised RuntimeError: cluster down") in ran.stderr
    assert "Traceback" not in ran.stderr


@pytest.mark.parametrize(("name", "what"), [
    ("nonfuture", "NotAFuture from plugin 'nonfuture' (phasewise-nonfuture 1.0): submit() "
                  "returned str, not a concurrent.futures.Future"),
    ("submitraise", "RaisingSubmit from plugin 'nonfuture' (phasewise-nonfuture 1.0): "
                    "submit() raised ConnectionError: cluster unreachable"),
])
def test_an_executor_whose_submit_breaks_fails_the_phase_naming_its_plugin(
    site: Path, demo: Path, tmp_path: Path, name: str, what: str
) -> None:
    ran = phasewise(site, "run", str(demo), "--executor", name, "--json", cwd=tmp_path)
    assert ran.returncode == 1, ran.stderr  # the phase failed; the process did not break
    document = json.loads(ran.stdout)
    assert document["status"] == "failed"
    phase = next(p for p in document["phases"] if p["name"] == "hello")
    assert phase["status"] == "failed"
    assert phase["error"] == f"executor {what}"
    assert "Traceback" not in ran.stderr


def test_two_distributions_providing_one_name_is_exit_2_naming_both(
    site: Path, demo: Path, tmp_path: Path
) -> None:
    ran = phasewise(site, "run", str(demo), "--executor", "twin", cwd=tmp_path)
    assert ran.returncode == 2, ran.stderr
    error = next(line for line in ran.stderr.splitlines() if line.startswith("Error:"))
    assert "executor 'twin' is registered by two plugins" in error
    assert "'twin_a' (phasewise-twin-a 1.0)" in error
    assert "'twin_b' (phasewise-twin-b 1.0)" in error
    blocked = phasewise(site, "-p", "no:twin_b", "run", str(demo), "--executor", "twin",
                        cwd=tmp_path)
    assert blocked.returncode == 0, blocked.stderr  # block one, and the other serves


def test_an_unknown_executor_suggests_the_closest_name_and_lists_the_installed(
    site: Path, demo: Path, tmp_path: Path
) -> None:
    ran = phasewise(site, "run", str(demo), "--executor", "proces", cwd=tmp_path)
    assert ran.returncode == 2, ran.stderr
    error = next(line for line in ran.stderr.splitlines() if line.startswith("Error:"))
    assert "unknown executor 'proces' (did you mean 'process'?)" in error
    installed = error.split("installed executors: ", 1)[1]
    for name in ("inline", "thread", "process", "subprocess", "blockme", "nonfuture"):
        assert name in installed
    failed = error.split("plugins that failed to load: ", 1)[1]
    assert "plugin 'broken' (phasewise-broken 1.0)" in failed
    assert "plugin 'raising' (phasewise-raising 1.0)" in failed


def test_an_unavailable_executor_is_listed_with_what_to_install_and_refused(
    site: Path, demo: Path, tmp_path: Path
) -> None:
    listed = phasewise(site, "executors")
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if line.startswith("ghost "))
    assert row.split()[1:3] == ["phasewise-unavail", "1.0"]
    assert "unavailable: pip install 'phasewise-unavail[ghost]' (ghostlib is not installed)" \
        in row
    ran = phasewise(site, "run", str(demo), "--executor", "ghost", cwd=tmp_path)
    assert ran.returncode == 2, ran.stderr
    assert ("Error: executor 'ghost' is not available: ghostlib is not installed (it comes "
            "from plugin 'unavail' (phasewise-unavail 1.0)); pip install "
            "'phasewise-unavail[ghost]'") in ran.stderr


# ── -p no:NAME ──────────────────────────────────────────────────────────────


def test_p_no_name_blocks_a_plugin(site: Path, demo: Path, tmp_path: Path) -> None:
    listed = phasewise(site, "executors")
    assert any(line.startswith("blockme ") for line in listed.stdout.splitlines())
    blocked = phasewise(site, "-p", "no:blockme", "-p", "no:explode", "executors")
    assert blocked.returncode == 0, blocked.stderr
    names = [line.split()[0] for line in blocked.stdout.splitlines()[2:] if line.strip()]
    assert "blockme" not in names and "explode" not in names and "thread" in names
    ran = phasewise(site, "-p", "no:blockme", "run", str(demo), "--executor", "blockme",
                    cwd=tmp_path)
    assert ran.returncode == 2
    assert ("Error: executor 'blockme' is not available: plugin 'blockme' "
            "(phasewise-blockme 1.0) is blocked by -p no:blockme") in ran.stderr


def test_p_no_builtin_leaves_only_third_party_executors(site: Path) -> None:
    listed = phasewise(site, "-p", "no:builtin", "executors")
    assert listed.returncode == 0, listed.stderr
    rows = [line.split() for line in listed.stdout.splitlines()[2:] if line.strip()]
    names = {row[0] for row in rows if row[1].startswith("phasewise-")}
    assert {"blockme", "nonfuture", "ghost"} <= names
    assert not {"inline", "thread", "process", "subprocess"} & {row[0] for row in rows}


def test_p_no_with_an_unknown_name_is_a_warning(site: Path, demo: Path, tmp_path: Path) -> None:
    ran = phasewise(site, "-p", "no:blockmee", "run", str(demo), cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert ("phasewise: warning: -p no:blockmee: no installed plugin is named 'blockmee'; "
            "did you mean 'blockme'?") in ran.stderr


def test_p_expects_no_colon_name(site: Path) -> None:
    ran = phasewise(site, "-p", "blockme", "executors")
    assert ran.returncode == 2
    assert "expects no:NAME" in ran.stderr


def test_the_variable_blocks_too_and_says_so(site: Path) -> None:
    listed = phasewise(site, "plugins", PHASEWISE_DISABLE_PLUGINS="blockme, twin_b")
    rows = {line.split()[0]: line for line in listed.stdout.splitlines()[2:] if line.strip()}
    assert re.search(r"blocked\s+PHASEWISE_DISABLE_PLUGINS$", rows["blockme"])
    assert "clash" not in listed.stderr and "'twin'" not in listed.stderr


# ── phasewise plugins ───────────────────────────────────────────────────────


def test_phasewise_plugins_lists_every_plugin_with_its_hooks_or_why(site: Path) -> None:
    listed = phasewise(site, "-p", "no:blockme", "plugins")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["plugin", "distribution", "version", "status", "hooks", "/",
                                "why"]
    rows = {line.split()[0]: line for line in lines[2:] if line.strip()}
    assert rows["builtin"].split()[1:5] == ["phasewise", "0.1.0", "loaded",
                                             "phasewise_executors"]
    assert rows["nonfuture"].split()[1:5] == ["phasewise-nonfuture", "1.0", "loaded",
                                               "phasewise_executors"]
    assert rows["broken"].split()[1:4] == ["phasewise-broken", "1.0", "failed"]
    assert rows["broken"].endswith(
        "ModuleNotFoundError: No module named 'phasewise_no_such_backend'")
    assert rows["raising"].split()[3] == "failed"
    assert "its phasewise_executors() raised RuntimeError" in rows["raising"]
    assert rows["blockme"].split()[1:] == ["phasewise-blockme", "1.0", "blocked", "-p",
                                           "no:blockme"]
    verbose = phasewise(site, "plugins", "-v")
    assert "Traceback (most recent call last)" in verbose.stdout
    as_json = json.loads(phasewise(site, "plugins", "--json").stdout)
    broken = next(p for p in as_json if p["name"] == "broken")
    assert broken["status"] == "failed" and "phasewise_no_such_backend" in broken["traceback"]


def test_phasewise_executors_shows_each_distribution_and_its_version(site: Path) -> None:
    listed = phasewise(site, "executors")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["executor", "distribution", "version", "description"]
    rows = [line.split() for line in lines[2:] if line.strip()]
    by_name = {row[0]: row for row in reversed(rows)}
    assert by_name["thread"][1] == "phasewise"
    assert by_name["blockme"][1:3] == ["phasewise-blockme", "1.0"]
    twins = [row for row in rows if row[0] == "twin"]
    assert sorted(row[1] for row in twins) == ["phasewise-twin-a", "phasewise-twin-b"]
    assert "2 plugins failed to load" in listed.stdout
