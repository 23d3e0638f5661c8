"""Loading TARGET: file and module targets, attributes, and every way a target is wrong."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import cloudpickle
import pytest
from click.testing import Result

from phasewise import Pipeline
from phasewise.cli.target import load_pipeline, parse_target
from phasewise.core.errors import TargetError

ONE = """
def hello():
    return "hi"

pipeline = Pipeline("one", Phase("hello", hello))
"""


@pytest.mark.parametrize(
    ("spec", "source", "attr", "is_file"),
    [
        ("build.py", "build.py", None, True),
        ("build.py:main", "build.py", "main", True),
        ("dir/build:main", "dir/build", "main", True),
        ("pkg.mod", "pkg.mod", None, False),
        ("pkg.mod:ns.pipe", "pkg.mod", "ns.pipe", False),
        ("C:\\work\\build.py", "C:\\work\\build.py", None, True),
    ],
)
def test_parse_target(spec: str, source: str, attr: str | None, is_file: bool) -> None:
    target = parse_target(spec)
    assert (target.source, target.attr, target.is_file) == (source, attr, is_file)


def test_file_target_single_pipeline(write_target: Callable[..., Path]) -> None:
    pipeline = load_pipeline(str(write_target(ONE)))
    assert isinstance(pipeline, Pipeline)
    assert pipeline.name == "one"


def test_file_target_is_a_registered_module_pickled_by_value(
    write_target: Callable[..., Path],
) -> None:
    pipeline = load_pipeline(str(write_target(ONE)))
    handler = pipeline.phases[0].handler
    module_name = handler.__module__
    assert sys.modules[module_name].pipeline is pipeline
    data = cloudpickle.dumps(handler)
    del sys.modules[module_name]  # by reference, loading would now fail to import it
    assert cloudpickle.loads(data)() == "hi"


def test_same_stem_in_two_folders_gives_two_modules(write_target: Callable[..., Path]) -> None:
    first = load_pipeline(str(write_target(ONE, name="a/pipe.py")))
    second = load_pipeline(str(write_target(ONE.replace('"one"', '"two"'), name="b/pipe.py")))
    assert (first.name, second.name) == ("one", "two")
    assert first.phases[0].handler.__module__ != second.phases[0].handler.__module__


def test_file_target_can_import_its_neighbours(
    write_target: Callable[..., Path], tmp_path: Path
) -> None:
    helper = f"helper_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{helper}.py").write_text("VALUE = 41\n", encoding="utf-8")
    body = f"""
    import {helper}

    def answer():
        return {helper}.VALUE + 1

    pipeline = Pipeline("n", Phase("answer", answer))
    """
    pipeline = load_pipeline(str(write_target(body)))
    assert pipeline.phases[0].handler() == 42


def test_attribute_selects_among_several(write_target: Callable[..., Path]) -> None:
    path = write_target(
        """
        def f():
            pass

        first = Pipeline("first", Phase("x", f))
        second = Pipeline("second", Phase("x", f))
        """
    )
    assert load_pipeline(f"{path}:second").name == "second"


def test_module_target_from_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = f"pkg_{uuid.uuid4().hex[:8]}"
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text("", encoding="utf-8")
    (tmp_path / package / "pipes.py").write_text(
        "from phasewise import Phase, Pipeline\n"
        "def f():\n    return 1\n"
        "class ns:\n    main = Pipeline('mod', Phase('f', f))\n",
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    assert load_pipeline(f"{package}.pipes:ns.main").name == "mod"


def test_same_pipeline_under_two_names_is_one_pipeline(
    write_target: Callable[..., Path],
) -> None:
    path = write_target(ONE + "alias = pipeline\n")
    assert load_pipeline(str(path)).name == "one"


# ── bad targets: a short message, exit 2, no traceback ─────────────────────


def _bad(result: Result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert 1 <= len(lines) <= 2, result.stderr
    for needle in needles:
        assert needle in result.stderr


@pytest.mark.parametrize("command", ["run", "list", "graph"])
def test_missing_file(command: str, invoke: Callable[..., Result], tmp_path: Path) -> None:
    _bad(invoke(command, tmp_path / "nope.py"), "nope.py", "does not exist")


def test_unknown_module(invoke: Callable[..., Result]) -> None:
    _bad(invoke("list", "no_such_module_xyz.pipes"), "no_such_module_xyz.pipes")


@pytest.mark.parametrize("command", ["run", "list"])
def test_syntax_error_names_file_and_line(
    command: str, invoke: Callable[..., Result], write_target: Callable[..., Path]
) -> None:
    path = write_target("x = 1\ndef broken(:\n    pass\n", header=False)
    _bad(invoke(command, path), "syntax error", str(path), "line 2")


def test_exception_while_importing(
    invoke: Callable[..., Result], write_target: Callable[..., Path]
) -> None:
    path = write_target("x = 1\ny = x / 0\n", header=False)
    _bad(invoke("run", path), "importing", "pipe.py", "line 2", "ZeroDivisionError")


def test_import_error_inside_target_is_not_a_missing_target(
    invoke: Callable[..., Result], write_target: Callable[..., Path]
) -> None:
    path = write_target("import no_such_dependency_xyz\n", header=False)
    _bad(invoke("list", path), "importing", "ModuleNotFoundError", "no_such_dependency_xyz")


def test_no_pipeline(invoke: Callable[..., Result], write_target: Callable[..., Path]) -> None:
    _bad(invoke("run", write_target("x = 1\n")), "defines no Pipeline")


def test_several_pipelines_are_listed(
    invoke: Callable[..., Result], write_target: Callable[..., Path]
) -> None:
    path = write_target(
        """
        def f():
            pass

        alpha = Pipeline("a", Phase("x", f))
        beta = Pipeline("b", Phase("x", f))
        """
    )
    _bad(invoke("run", path), "2 pipelines", "alpha", "beta")


def test_unknown_attribute(
    invoke: Callable[..., Result], write_target: Callable[..., Path]
) -> None:
    path = write_target(ONE)
    _bad(invoke("run", f"{path}:missing"), "no attribute 'missing'", "pipeline")


def test_attribute_not_a_pipeline(
    invoke: Callable[..., Result], write_target: Callable[..., Path]
) -> None:
    path = write_target(ONE)
    _bad(invoke("list", f"{path}:hello"), "is a function, not a Pipeline")


@pytest.mark.parametrize(
    ("body", "needles"),
    [
        (
            'pipeline = Pipeline("p", Phase("a", f, depends_on=("ghost",)))\n',
            ("invalid pipeline", "ghost", "line 4"),
        ),
        (
            'pipeline = Pipeline("p", Phase("a", f, depends_on=("b",)),'
            ' Phase("b", f, depends_on=("a",)))\n',
            ("Circular dependency", "a → b → a"),
        ),
        ('pipeline = Pipeline("p", Phase("a", f), Phase("a", f))\n', ("invalid pipeline", "'a'")),
    ],
    ids=["unknown-dependency", "cycle", "duplicate"],
)
def test_invalid_pipeline_definition(
    body: str,
    needles: tuple[str, ...],
    invoke: Callable[..., Result],
    write_target: Callable[..., Path],
) -> None:
    path = write_target("def f():\n    pass\n" + body)
    _bad(invoke("run", path), *needles)


def test_target_error_is_a_phasewise_error(write_target: Callable[..., Path]) -> None:
    with pytest.raises(TargetError, match="defines no Pipeline"):
        load_pipeline(str(write_target("x = 1\n")))
