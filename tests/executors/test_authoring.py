"""Writing real pipelines (issue 10) on every executor: params, a folder per phase,
labels, conditions, hooks, groups, validation, error types, review points."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from phasewise import Phase, PhasePolicy, Pipeline, PipelineError
from phasewise.core.context import MissingParam
from phasewise.plugins.manager import executor_registry

pytestmark = pytest.mark.timeout(60)

EXECUTORS = executor_registry().names()


@pytest.fixture(params=EXECUTORS)
def executor(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# handlers (module level: they cross processes by reference)


def uses_params(params) -> str:
    return f"{params['site']}-{params['level']}"


def writes_in_its_folder(workdir) -> str:
    (workdir / "out.txt").write_text("written")
    return str(workdir)


def reads_the_folder_of_its_dependency(context, workdir) -> str:
    return (Path(context["write"]) / "out.txt").read_text() + f" from {workdir.name}"


def everything(context, params, workdir) -> tuple[Any, Any, str]:
    return dict(context), dict(params), workdir.name


def one() -> int:
    return 1


def fails() -> None:
    raise ValueError("the input is broken")


def missing_param(params) -> Any:
    return params["nope"]


class CollectError(Exception):
    pass


# params


def test_handlers_asking_for_params_get_the_runs(executor: str) -> None:
    pipeline = Pipeline("params", Phase("p", uses_params), params={"site": "docs", "level": 1})
    assert pipeline.run(executor=executor).results["p"] == "docs-1"
    assert pipeline.run(executor=executor, params={"level": 3}).results["p"] == "docs-3"


def test_params_are_read_only_and_a_miss_says_what_there_is(executor: str) -> None:
    result = Pipeline("params", Phase("p", missing_param), params={"a": 1}).run(
        executor=executor)
    error = result.state.phase("p").error
    assert "MissingParam" in error and "'nope'" in error and "its params: a" in error


def test_a_param_the_defaults_do_not_know_is_refused() -> None:
    pipeline = Pipeline("params", Phase("p", uses_params), params={"site": "x", "level": 1})
    with pytest.raises(ValueError, match=r"no parameter 'levle' .*its parameters: level, site"):
        pipeline.run(executor="inline", params={"levle": 2})


def test_run_params_pickle_and_refuse_changes() -> None:
    import pickle

    from phasewise.core.context import RunParams

    params = pickle.loads(pickle.dumps(RunParams({"a": 1})))
    assert dict(params) == {"a": 1}
    with pytest.raises(TypeError):
        params["a"] = 2  # type: ignore[index]
    with pytest.raises(MissingParam):
        params["b"]


# a folder per phase


def test_each_phase_asking_for_workdir_gets_its_own_folder(executor: str, tmp_path: Path) -> None:
    pipeline = Pipeline(
        "folders",
        Phase("write", writes_in_its_folder),
        Phase("read", reads_the_folder_of_its_dependency, depends_on="write"),
    )
    result = pipeline.run(executor=executor, workdir=tmp_path / "w", cache=False)
    assert result.ok, result.state
    assert result.results["write"] == str(tmp_path / "w" / "write")
    assert result.results["read"] == "written from read"
    assert (tmp_path / "w" / "write" / "out.txt").read_text() == "written"


def test_without_a_run_workdir_the_folders_are_temporary(executor: str) -> None:
    result = Pipeline("temp", Phase("write", writes_in_its_folder)).run(executor=executor)
    assert result.ok, result.state
    folder = Path(result.results["write"])
    assert folder.name == "write"
    assert not folder.exists(), "the temporary folder outlived the run"


def test_a_handler_may_ask_for_all_three(executor: str, tmp_path: Path) -> None:
    pipeline = Pipeline("all", Phase("one", one), Phase("all", everything, depends_on="one"),
                        params={"k": "v"})
    result = pipeline.run(executor=executor, workdir=tmp_path / "w", cache=False)
    assert result.results["all"] == ({"one": 1}, {"k": "v"}, "all")


def test_a_parameter_phasewise_cannot_fill_fails_at_construction() -> None:
    def handler(context, source):
        return source

    with pytest.raises(PipelineError, match=r"phase 'x'.*parameter 'source'"):
        Phase("x", handler)
    Phase("ok", lambda context, source=1: source)  # a default is fine


# labels, conditions, hooks


def test_a_label_defaults_to_the_name() -> None:
    assert Phase("prep", one).label == "prep"
    assert Phase("prep", one, label="Preprocessing").label == "Preprocessing"


def test_a_false_condition_skips_the_phase_and_dependants_run(executor: str) -> None:
    pipeline = Pipeline(
        "when",
        Phase("strict", one, when=lambda params: params["strict"]),
        Phase("lenient", one, when=lambda params, context: not params["strict"]),
        Phase("after", lambda context: dict(context), depends_on=("strict", "lenient")),
        params={"strict": False},
    )
    result = pipeline.run(executor=executor)
    assert result.ok, result.state
    assert result.state.phase("strict").status == "skipped"
    assert result.state.phase("strict").error == "condition not met"
    assert result.state.phase("lenient").status == "completed"
    assert result.results["after"] == {"strict": None, "lenient": 1}


def test_a_condition_that_raises_fails_its_phase(executor: str) -> None:
    pipeline = Pipeline("when", Phase("p", one, when=lambda params: params["missing"]))
    result = pipeline.run(executor=executor)
    assert result.state.phase("p").status == "failed"
    assert "condition raised MissingParam" in result.state.phase("p").error


def test_hooks_run_in_the_parent_and_cannot_change_the_outcome(executor: str) -> None:
    seen: list[tuple[str, Any]] = []
    pipeline = Pipeline(
        "hooks",
        Phase("good", one, on_success=lambda r: seen.append(("ok", r))),
        Phase("bad", fails, on_failure=lambda e: seen.append(("failed", str(e))),
              policy=PhasePolicy(on_fail="skip")),
        Phase("loud", one, on_success=lambda r: 1 / 0),
        capture_output=True,
    )
    result = pipeline.run(executor=executor)
    assert result.ok, result.state
    assert ("ok", 1) in seen
    assert any(kind == "failed" and "broken" in text for kind, text in seen)
    assert result.state.phase("loud").status == "completed"
    lines = [log.line for log in result.state.phase("loud").logs]
    assert any("on_success hook raised ZeroDivisionError" in line for line in lines), lines


# validation, error types


def test_validation_warnings_are_logged_and_a_raise_fails_the_phase(executor: str) -> None:
    def check(result):
        if result > 0:
            return [f"{result} looks small"]
        return None

    def refuse(result):
        raise ValueError("no good")

    pipeline = Pipeline(
        "validate",
        Phase("warned", one, validate=check),
        Phase("refused", one, validate=refuse, policy=PhasePolicy(on_fail="skip")),
    )
    result = pipeline.run(executor=executor)
    warned = result.state.phase("warned")
    assert warned.status == "completed"
    assert [(log.line, log.stream) for log in warned.logs] == [("warning: 1 looks small",
                                                                 "stderr")]
    assert result.state.phase("refused").status == "skipped"  # its policy applies
    assert result.state.phase("refused").error == "ValueError: no good"


def test_a_phase_error_type_names_the_failure_and_is_raised(executor: str) -> None:
    pipeline = Pipeline("typed", Phase("collect", fails, error=CollectError))
    result = pipeline.run(executor=executor)
    assert result.state.phase("collect").error == "CollectError: the input is broken"
    with pytest.raises(CollectError, match="the input is broken") as caught:
        result.raise_for_status()
    assert caught.value.__cause__ is not None


def test_a_non_critical_phase_is_skipped_and_the_run_completes(executor: str) -> None:
    result = Pipeline("skip", Phase("optional", fails, policy=PhasePolicy(on_fail="skip")),
                      Phase("next", one, depends_on="optional")).run(executor=executor)
    assert result.ok
    assert result.state.phase("optional").status == "skipped"


# groups


def test_a_group_runs_its_members_and_is_one_node(executor: str) -> None:
    pipeline = Pipeline(
        "groups",
        Phase("setup", one),
        Pipeline.group("checks", Phase("lint", one), Phase("test", one), depends_on="setup"),
        Phase("deploy", lambda context: context["checks"], depends_on="checks"),
    )
    assert [p.name for p in pipeline.phases] == ["setup", "lint", "test", "checks", "deploy"]
    assert pipeline.phase("lint").parallel and pipeline.phase("test").parallel
    assert pipeline.phase("lint").depends_on == ("setup",)
    result = pipeline.run(executor=executor)
    assert result.ok, result.state
    assert result.results["deploy"] == {"lint": 1, "test": 1}


# review points


def test_a_review_point_pauses_and_can_stop_the_run(executor: str, tmp_path: Path) -> None:
    asked: list[tuple[str, str]] = []

    def review(phase: str, message: str, folder: Path | None) -> bool:
        asked.append((phase, message))
        return False

    pipeline = Pipeline(
        "review",
        Phase("draft", writes_in_its_folder, review="Check the files in {workdir}"),
        Phase("publish", one, depends_on="draft"),
    )
    result = pipeline.run(executor=executor, workdir=tmp_path / "w", review=review,
                          cache=False)
    assert asked == [("draft", f"Check the files in {tmp_path / 'w' / 'draft'}")]
    assert result.status == "cancelled"
    assert result.state.phase("publish").status == "cancelled"
    resumed = pipeline.run(executor=executor, workdir=tmp_path / "w", resume=True,
                           cache=False)
    assert resumed.ok
    assert os.path.exists(tmp_path / "w" / "draft" / "out.txt")


def test_pause_after_names_phases_to_review_and_going_on_continues(executor: str) -> None:
    asked: list[str] = []
    pipeline = Pipeline("pause", Phase("a", one), Phase("b", one, depends_on="a"))
    result = pipeline.run(executor=executor, pause_after=["a"],
                          review=lambda phase, message, folder: asked.append(phase) or True)
    assert result.ok
    assert asked == ["a"]
    with pytest.raises(ValueError, match="names no phase"):
        pipeline.run(executor=executor, pause_after=["zzz"])


# the decorator builder


def test_the_builder_makes_the_pipeline_the_constructor_would(executor: str,
                                                              tmp_path: Path) -> None:
    from phasewise import PipelineBuilder

    build = PipelineBuilder("build", params={"site": "docs"})

    @build.phase(label="Discover sources")
    def discover(params, workdir):
        (workdir / "sources").write_text(params["site"])
        return ["a", "b"]

    @build.phase(depends_on=discover, parallel=True)
    def render(context, workdir):
        return [page.upper() for page in context["discover"]]

    @build.phase(name="count", depends_on=[discover, "render"])
    def count_pages(context):
        return len(context["render"])

    pipeline = build.build()
    assert [p.name for p in pipeline.phases] == ["discover", "render", "count"]
    assert pipeline.phase("discover").label == "Discover sources"
    assert pipeline.phase("render").depends_on == ("discover",)
    assert discover.__name__ == "discover"  # the function itself is returned
    result = pipeline.run(executor=executor, workdir=tmp_path / "w", cache=False)
    assert result.ok, result.state
    assert result.results == {"discover": ["a", "b"], "render": ["A", "B"], "count": 2}
    assert (tmp_path / "w" / "discover" / "sources").read_text() == "docs"


def test_the_builder_groups_phases_and_refuses_unknown_functions() -> None:
    from phasewise import PipelineBuilder

    build = PipelineBuilder("grouped")

    @build.phase
    def lint():
        return 1

    @build.phase
    def test():
        return 2

    checks = build.group("checks", lint, test)

    @build.phase(depends_on=checks)
    def deploy(context):
        return context["checks"]

    assert build.build().run(executor="inline").results["deploy"] == {"lint": 1, "test": 2}

    def stranger():
        return 0

    with pytest.raises(PipelineError, match="not a phase of this builder"):
        build.phase(depends_on=stranger)(lambda: 1)
