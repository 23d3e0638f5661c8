"""``phasewise list``, ``graph``, ``executors``, ``--version`` and every ``--help``."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

import phasewise
from phasewise.plugins.manager import executor_registry, plugin_manager

PIPELINE = """
def f():
    pass

pipeline = Pipeline(
    "shop",
    Phase("fetch", f, description="download the catalogue"),
    Phase("resize", f, depends_on=("fetch",), parallel=True, weight=3),
    Phase("index", f, depends_on=("fetch",), parallel=True, executor="inline"),
    Phase("publish", f, depends_on=("resize", "index"), description="upload"),
)
"""


def _rows(output: str) -> list[list[str]]:
    """Table rows after the dashed rule up to the first empty line, split on runs of 2+
    spaces."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if re.fullmatch(r"-+( +-+)+", line)) + 1
    rows = []
    for line in lines[start:]:
        if not line.strip():
            break
        rows.append(re.split(r"\s{2,}", line.strip()))
    return rows


def _after_table(output: str) -> list[str]:
    """The non-empty lines after the table."""
    lines = output.splitlines()
    rule = next(i for i, line in enumerate(lines) if re.fullmatch(r"-+( +-+)+", line))
    end = next(i for i in range(rule, len(lines)) if not lines[i].strip())
    return [line for line in lines[end:] if line.strip()]


def test_list_shows_execution_order_and_details(
    invoke: Callable[..., Result], write_target: Callable[..., Path]
) -> None:
    result = invoke("list", write_target(PIPELINE))
    assert result.exit_code == 0, result.output
    assert "pipeline 'shop': 4 phases" in result.stdout
    rows = _rows(result.stdout)
    assert [row[1] for row in rows] == ["fetch", "index", "resize", "publish"]
    by_name = {row[1]: row for row in rows}
    assert by_name["fetch"] == ["1", "fetch", "-", "no", "(run's)", "1", "download the catalogue"]
    assert by_name["index"][2:5] == ["fetch", "yes", "inline"]
    assert by_name["resize"][5] == "3"
    assert by_name["publish"][2] == "resize, index"
    assert by_name["publish"][6] == "upload"


def test_list_says_which_phases_may_overlap(
    invoke: Callable[..., Result], write_target: Callable[..., Path]
) -> None:
    result = invoke("list", write_target(PIPELINE))
    assert result.exit_code == 0, result.output
    assert _after_table(result.stdout) == [
        "may run at the same time: index, resize (parallel=True); the others run alone"
    ]


@pytest.mark.parametrize(
    ("flags", "line"),
    [
        (("False", "False"), "every phase runs alone (parallel=False): -j has no effect"),
        (("True", "True"),
         "every phase may run at the same time as others (parallel=True), up to -j N"),
    ],
    ids=["none", "all"],
)
def test_list_when_no_phase_or_every_phase_may_overlap(
    flags: tuple[str, str], line: str, invoke: Callable[..., Result],
    write_target: Callable[..., Path],
) -> None:
    path = write_target(f"""
        def f():
            pass

        pipeline = Pipeline("p", Phase("a", f, parallel={flags[0]}),
                            Phase("b", f, parallel={flags[1]}))
        """)
    result = invoke("list", path)
    assert result.exit_code == 0, result.output
    assert [row[1] for row in _rows(result.stdout)] == ["a", "b"]  # the table is kept
    assert _after_table(result.stdout) == [line]


def test_graph_mermaid(invoke: Callable[..., Result], write_target: Callable[..., Path]) -> None:
    result = invoke("graph", write_target(PIPELINE))
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "flowchart TD"
    nodes = dict(re.findall(r'^\s+(p\d+)[\[(]"([^"]+)"', result.stdout, re.M))
    ids = {name: node for node, name in nodes.items()}
    edges = set(re.findall(r"(p\d+) --> (p\d+)", result.stdout))
    expected = {("fetch", "resize"), ("fetch", "index"), ("resize", "publish"),
                ("index", "publish")}
    assert edges == {(ids[a], ids[b]) for a, b in expected}
    assert f'{ids["resize"]}("resize")' in result.stdout  # parallel: rounded
    assert f'{ids["fetch"]}["fetch"]' in result.stdout


def test_graph_dot_escapes_names(
    invoke: Callable[..., Result], write_target: Callable[..., Path]
) -> None:
    path = write_target(
        """
        def f():
            pass

        pipeline = Pipeline("q", Phase('say "hi"', f), Phase("b", f, depends_on=('say "hi"',)))
        """
    )
    result = invoke("graph", path, "--format", "dot")
    assert result.exit_code == 0
    assert result.stdout.startswith('digraph "q" {')
    assert '    "say \\"hi\\"" -> "b";' in result.stdout
    assert result.stdout.rstrip().endswith("}")


GRAPHED_RUN = """
def ok():
    return 1

def bad():
    raise ValueError("no")

pipeline = Pipeline("gr", Phase("a", ok), Phase("b", bad, depends_on=("a",)),
                    Phase("c", ok, depends_on=("b",)))
"""


@pytest.mark.parametrize("fmt", ["mermaid", "dot"])
def test_graph_colors_each_phase_by_the_status_of_the_kept_run(
    fmt: str, invoke: Callable[..., Result], write_target: Callable[..., Path], tmp_path: Path
) -> None:
    from phasewise.cli.palette import STATUS_FILL

    path = write_target(GRAPHED_RUN)
    workdir = tmp_path / "wd"
    assert invoke("run", path, "--workdir", workdir, "-e", "inline").exit_code == 1
    result = invoke("graph", path, "--workdir", workdir, "--format", fmt)
    assert result.exit_code == 0, result.output
    colors = {"a": STATUS_FILL["completed"], "b": STATUS_FILL["failed"],
              "c": STATUS_FILL["cancelled"]}
    if fmt == "dot":
        for name, color in colors.items():
            assert re.search(rf'^    "{name}" \[.*fillcolor="{color}"', result.stdout, re.M)
    else:
        ids = {name: node for node, name in re.findall(
            r'^\s+(p\d+)\["([^"]+)"', result.stdout, re.M)}
        fills = dict(re.findall(r"^    classDef (\w+) fill:(#\w+)", result.stdout, re.M))
        classes = {node: status for nodes, status in re.findall(
            r"^    class ([\w,]+) (\w+)$", result.stdout, re.M) for node in nodes.split(",")}
        assert {name: fills[classes[ids[name]]] for name in colors} == colors


def test_graph_of_a_workdir_of_another_pipeline_is_exit_2(
    invoke: Callable[..., Result], write_target: Callable[..., Path], tmp_path: Path
) -> None:
    workdir = tmp_path / "wd"
    invoke("run", write_target(GRAPHED_RUN), "--workdir", workdir, "-e", "inline")
    result = invoke("graph", write_target(PIPELINE, name="other.py"), "--workdir", workdir)
    assert result.exit_code == 2
    assert "belongs to pipeline 'gr'" in result.stderr
    assert "Traceback" not in result.output


def test_graph_rejects_unknown_format(
    invoke: Callable[..., Result], write_target: Callable[..., Path]
) -> None:
    result = invoke("graph", write_target(PIPELINE), "--format", "png")
    assert result.exit_code == 2
    assert "png" in result.stderr
    assert "Traceback" not in result.output


def test_executors_lists_builtins_with_distribution_and_description(
    invoke: Callable[..., Result],
) -> None:
    result = invoke("executors")
    assert result.exit_code == 0
    rows = {row[0]: row for row in _rows(result.stdout)}
    assert {"inline", "thread"} <= set(rows)
    assert rows["inline"][1:3] == ["phasewise", phasewise.__version__]
    assert rows["inline"][3].startswith("Runs each phase in the caller's thread")
    assert rows["thread"][3].startswith("A pool of threads")


class _Impostor:
    """A plugin that claims the name of a built-in executor."""

    @phasewise.hookimpl
    def phasewise_executors(self) -> dict[str, object]:
        return {"thread": object}


def test_conflicting_plugins_are_reported_without_traceback(
    invoke: Callable[..., Result],
) -> None:
    pm, impostor = plugin_manager(), _Impostor()
    pm.register(impostor, name="impostor")
    executor_registry.cache_clear()
    try:
        result = invoke("executors")
    finally:
        pm.unregister(impostor)
        executor_registry.cache_clear()
    assert result.exit_code == 0  # listed, each claimant marked; a run on it is exit 2
    assert "executor 'thread' is registered by two plugins" in result.stderr
    assert "impostor" in result.stderr
    assert "Traceback" not in result.output


def test_version(invoke: Callable[..., Result]) -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"phasewise {phasewise.__version__}"


@pytest.mark.parametrize(
    ("args", "phrase"),
    [
        ((), "Run Python pipelines phase by phase"),
        (("run",), "Run the pipeline TARGET"),
        (("list",), "execution order"),
        (("graph",), "dependency graph"),
        (("executors",), "installed executors"),
    ],
)
def test_every_command_explains_itself(
    args: tuple[str, ...], phrase: str, invoke: Callable[..., Result]
) -> None:
    result = invoke(*args, "--help")
    assert result.exit_code == 0
    assert phrase in " ".join(result.stdout.split())


def test_run_help_documents_every_option(invoke: Callable[..., Result]) -> None:
    text = invoke("run", "--help").stdout
    for option in ("--executor", "PHASEWISE_EXECUTOR", "-j, --max-workers",
                   "--capture / --no-capture", "--fail-fast", "--json", "-O, --executor-option",
                   "-v, --verbose"):
        assert option in text
    flat = " ".join(text.split())
    assert "sets PHASEWISE_DEBUG=1" in flat
    assert "full traceback" in flat


AUTHORED = """
from phasewise import PipelineBuilder

class RenderError(Exception):
    pass

build = PipelineBuilder("site", params={"site": "docs", "strict": False})

@build.phase(label="Discover sources", cache="24h")
def discover(params, workdir):
    pass

@build.phase(depends_on=discover, when=lambda params: params["strict"])
def lint(context):
    pass

def is_big(context):
    return True

@build.phase(depends_on=discover, when=is_big, review="look at {workdir}",
             error=RenderError, policy=PhasePolicy(on_fail="retry", max_retries=2))
def render(context, workdir):
    pass

build.group("checks", lint)

@build.phase(depends_on="checks")
def plain(context):
    pass

pipeline = build.build()
"""


def _tables(output: str) -> list[list[list[str]]]:
    """Every table: its rows after the dashed rule, split on runs of 2+ spaces."""
    lines = output.splitlines()
    tables = []
    for i, line in enumerate(lines):
        if re.fullmatch(r"-+( +-+)+", line):
            rows = [re.split(r"\s{2,}", lines[i - 1].strip())]
            for row in lines[i + 1:]:
                if not row.strip():
                    break
                rows.append(re.split(r"\s{2,}", row.strip()))
            tables.append(rows)
    return tables


def test_list_shows_labels_conditions_params_cache_and_groups(
    invoke: Callable[..., Result], write_target: Callable[..., Path]
) -> None:
    result = invoke("list", write_target(AUTHORED))
    assert result.exit_code == 0, result.output
    assert "params: site, strict" in result.stdout.splitlines()[0]
    main, details = _tables(result.stdout)
    assert [row[1] for row in main[1:]] == ["discover", "lint", "render", "checks", "plain"]
    assert details[0] == ["phase", "label", "uses", "when", "cache", "group", "also"]
    rows = {row[0]: row for row in details[1:]}
    assert set(rows) == {"discover", "lint", "render", "checks"}  # plain sets nothing
    assert rows["discover"][1:6] == ["Discover sources", "params, workdir", "-", "24h", "-"]
    assert rows["lint"][3] == 'lambda params: params["strict"]'
    assert rows["lint"][5] == "checks"
    assert rows["render"][2:4] == ["workdir", "is_big"]
    assert rows["render"][6] == "review, error=RenderError, on_fail=retry x2"
    assert rows["checks"][5] == "checks (its node)"
    assert _after_table(result.stdout)[-1].startswith("may run at the same time")


def test_list_keeps_one_table_when_nothing_more_is_set(
    invoke: Callable[..., Result], write_target: Callable[..., Path]
) -> None:
    result = invoke("list", write_target(PIPELINE))
    assert len(_tables(result.stdout)) == 1
    assert "params:" not in result.stdout
