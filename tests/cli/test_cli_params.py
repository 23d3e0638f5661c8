"""``phasewise run --param KEY=VALUE`` and ``--params-file FILE.json|.toml``."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from phasewise.cli.params import ParamsError, load_params_file, parse_key_values

WITH_DEFAULTS = """
def show(params):
    return dict(params)

pipeline = Pipeline("p", Phase("show", show), params={"site": "docs", "pages": 3,
                                                       "strict": False})
"""

NO_DEFAULTS = """
def show(params):
    return dict(params)

pipeline = Pipeline("free", Phase("show", show))
"""


def _shown(result: Result) -> dict[str, Any]:
    assert result.exit_code == 0, result.output
    shown: dict[str, Any] = json.loads(result.stdout)["results"]["show"]
    return shown


def _usage_error(result: Result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith("Error: ")
    for needle in needles:
        assert needle in line


def test_params_override_the_defaults_and_parse_as_json(
    invoke: Callable[..., Result], write_target: Callable[..., Path]
) -> None:
    path = write_target(WITH_DEFAULTS)
    assert _shown(invoke("run", path, "--json")) == {"site": "docs", "pages": 3,
                                                     "strict": False}
    got = _shown(invoke("run", path, "--json", "--param", "pages=20", "--param",
                        "strict=true", "--param", "site=blog"))
    assert got == {"site": "blog", "pages": 20, "strict": True}


def test_a_pipeline_without_defaults_takes_any_param(
    invoke: Callable[..., Result], write_target: Callable[..., Path]
) -> None:
    got = _shown(invoke("run", write_target(NO_DEFAULTS), "--json", "--param",
                        "tags=[\"a\", \"b\"]", "--param", "name-with-dash=x"))
    assert got == {"tags": ["a", "b"], "name-with-dash": "x"}


def test_an_unknown_param_names_the_known_ones(
    invoke: Callable[..., Result], write_target: Callable[..., Path]
) -> None:
    result = invoke("run", write_target(WITH_DEFAULTS), "--param", "nope=1")
    _usage_error(result, "'nope'", "pages, site, strict")
    assert not Path(".phasewise").exists()  # refused before the run started


@pytest.mark.parametrize("suffix", [".json", ".toml"])
def test_params_file_and_param_over_it(
    suffix: str, invoke: Callable[..., Result], write_target: Callable[..., Path],
    tmp_path: Path,
) -> None:
    if suffix == ".toml" and sys.version_info < (3, 11):
        pytest.importorskip("tomli")
    file = tmp_path / f"params{suffix}"
    file.write_text('{"pages": 7, "site": "blog"}' if suffix == ".json"
                    else 'pages = 7\nsite = "blog"\n', encoding="utf-8")
    path = write_target(WITH_DEFAULTS)
    assert _shown(invoke("run", path, "--json", "--params-file", file)) == {
        "site": "blog", "pages": 7, "strict": False}
    assert _shown(invoke("run", path, "--json", "--params-file", file, "--param",
                         "pages=1")) == {"site": "blog", "pages": 1, "strict": False}


def test_an_unknown_param_in_the_file_names_the_file(
    invoke: Callable[..., Result], write_target: Callable[..., Path], tmp_path: Path
) -> None:
    file = tmp_path / "p.json"
    file.write_text('{"bogus": 1}', encoding="utf-8")
    result = invoke("run", write_target(WITH_DEFAULTS), "--params-file", file)
    _usage_error(result, f"--params-file {file}", "'bogus'", "pages, site, strict")


@pytest.mark.parametrize(
    ("name", "content", "says"),
    [
        ("p.json", "{not json", "not valid JSON"),
        ("p.json", "[1, 2]", "must hold a JSON object"),
        ("p.toml", "pages = ", "not valid TOML"),
        ("p.yaml", "pages: 1", "give a .json or a .toml file"),
        ("p.json", None, "no such file"),
        ("p.json", b"\xff\xfe{}", "not UTF-8"),
    ],
    ids=["bad-json", "not-an-object", "bad-toml", "suffix", "missing", "encoding"],
)
def test_a_bad_params_file_is_one_line_naming_it(
    name: str, content: str | bytes | None, says: str, invoke: Callable[..., Result],
    write_target: Callable[..., Path], tmp_path: Path,
) -> None:
    if name.endswith(".toml") and sys.version_info < (3, 11):
        pytest.importorskip("tomli")
    file = tmp_path / "files" / name
    file.parent.mkdir()
    if isinstance(content, bytes):
        file.write_bytes(content)
    elif content is not None:
        file.write_text(content, encoding="utf-8")
    result = invoke("run", write_target(WITH_DEFAULTS), "--params-file", file)
    _usage_error(result, f"--params-file {file}", says)


@pytest.mark.parametrize("item", ["novalue", "=3"])
def test_a_malformed_param(
    item: str, invoke: Callable[..., Result], write_target: Callable[..., Path]
) -> None:
    _usage_error(invoke("run", write_target(NO_DEFAULTS), "--param", item), "--param",
                 "KEY=VALUE", repr(item))


def test_the_resume_command_carries_the_params(
    invoke: Callable[..., Result], write_target: Callable[..., Path], tmp_path: Path
) -> None:
    path = write_target("""
        def boom(params):
            raise RuntimeError(params["site"])

        pipeline = Pipeline("fails", Phase("boom", boom), params={"site": "docs"})
        """)
    file = tmp_path / "p.json"
    file.write_text('{"site": "blog"}', encoding="utf-8")
    result = invoke("run", path, "--params-file", file, "--param", "site=shop",
                    "--workdir", "w")
    assert result.exit_code == 1
    assert "RuntimeError: shop" in result.stderr
    assert (f"to carry this run on: phasewise run {path} --params-file {file} "
            "--param site=shop --workdir w --resume") in result.stderr


def test_parse_key_values_shares_the_executor_options_rules() -> None:
    assert parse_key_values(["a=1", "b=x", "c=", "a=[1]"], "--param") == {
        "a": [1], "b": "x", "c": ""}
    assert parse_key_values(["my-key=1"], "--param", identifiers=False) == {"my-key": 1}
    with pytest.raises(ParamsError, match="Python identifier"):
        parse_key_values(["my-key=1"], "-O")


def test_load_params_file_reads_json(tmp_path: Path) -> None:
    file = tmp_path / "p.JSON"
    file.write_text('{"a": {"b": [1, 2.5]}}', encoding="utf-8")
    assert load_params_file(str(file)) == {"a": {"b": [1, 2.5]}}
    folder = tmp_path / "dir.json"
    folder.mkdir()
    with pytest.raises(ParamsError, match="is a directory"):
        load_params_file(str(folder))
