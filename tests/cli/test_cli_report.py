"""The CLI's tables and its JSON document, without the CLI."""

from __future__ import annotations

import json
import math

from phasewise import Action, Phase, Pipeline
from phasewise.cli.report import format_table, json_document
from phasewise.core import actions as A


def _noop() -> None:
    pass


PIPELINE = Pipeline("r", Phase("a", _noop), Phase("b", _noop, depends_on=("a",)))


def test_format_table_aligns_columns() -> None:
    text = format_table(("x", "longer"), [("abc", "1"), ("d", "")])
    assert text.splitlines() == ["x    longer", "---  ------", "abc  1", "d"]


def test_json_document_keeps_json_values_and_reprs_the_rest() -> None:
    state = PIPELINE.build_reducer()(None, Action(A.INIT))
    doc = json.loads(json_document(state, {
        "a": {"k": [1, "two"]}, "b": object, "c": math.nan, "d": None,
    }))
    assert doc["pipeline"] == "r"
    assert doc["results"]["a"] == {"k": [1, "two"]}
    assert doc["results"]["b"] == repr(object)
    assert doc["results"]["c"] == "nan"
    assert doc["results"]["d"] is None
