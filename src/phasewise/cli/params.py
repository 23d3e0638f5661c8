"""``KEY=VALUE`` options and the run's parameters for ``phasewise run``.

``-O/--executor-option`` and ``--param`` share one parser (``parse_key_values``): a VALUE
that parses as JSON becomes that value, any other stays a string. ``--params-file``
reads a JSON object or a TOML table; ``--param`` overrides what the file sets. Every
problem is a ``ParamsError`` (a ``ValueError``) with one line that says what is wrong;
the command turns it into a usage error (exit 2).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["ParamsError", "load_params_file", "parse_key_values", "run_params"]


class ParamsError(ValueError):
    """A ``KEY=VALUE`` item or a params file that cannot be used; the message says why."""


def parse_key_values(items: Iterable[str], option: str, *,
                     identifiers: bool = True) -> dict[str, Any]:
    """``KEY=VALUE`` pairs as a dict; a VALUE that parses as JSON becomes that value
    (``4`` → 4, ``0.5`` → 0.5, ``true`` → True, ``[1, 2]`` → a list), any other VALUE
    stays a string. With ``identifiers``, KEY must be a Python identifier (keyword
    arguments); else any non-empty KEY without surrounding spaces. A later KEY wins."""
    values: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or (identifiers and not key.isidentifier()):
            what = "KEY a Python identifier" if identifiers else "a non-empty KEY"
            raise ParamsError(f"{option} expects KEY=VALUE with {what}, got {item!r}")
        try:
            values[key] = json.loads(raw)
        except ValueError:
            values[key] = raw
    return values


def load_params_file(path: str) -> dict[str, Any]:
    """The parameters in ``path``: a JSON object (``.json``) or a TOML document
    (``.toml``, read with ``tomllib``; on Python 3.10 only if ``tomli`` is installed)."""
    where = f"--params-file {path}"
    suffix = Path(path).suffix.lower()
    if suffix not in (".json", ".toml"):
        raise ParamsError(f"{where}: give a .json or a .toml file (got {suffix or 'no'} "
                          "suffix)")
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ParamsError(f"{where}: no such file") from None
    except IsADirectoryError:
        raise ParamsError(f"{where}: is a directory, not a file") from None
    except OSError as exc:
        raise ParamsError(f"{where}: cannot be read ({exc.strerror or exc})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ParamsError(f"{where}: not UTF-8 text (byte {exc.start})") from None
    values = _toml(text, where) if suffix == ".toml" else _json(text, where)
    if not isinstance(values, dict):
        raise ParamsError(f"{where}: must hold a JSON object of names and values, got "
                          f"{_kind(values)}")
    return values


def run_params(file: str | None, items: Iterable[str]) -> tuple[dict[str, Any], set[str]]:
    """The parameters the command line gives — the file's, then ``--param`` over them —
    and the names that came from the file alone."""
    from_file = load_params_file(file) if file is not None else {}
    given = parse_key_values(items, "--param", identifiers=False)
    return {**from_file, **given}, set(from_file) - set(given)


def _json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ParamsError(f"{where}: not valid JSON: {exc}") from None


def _toml(text: str, where: str) -> Any:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef,import-not-found,unused-ignore]
        except ImportError:
            raise ParamsError(f"{where}: reading TOML needs Python 3.11 or later (or the "
                              "tomli package); give a .json file instead") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ParamsError(f"{where}: not valid TOML: {exc}") from None


def _kind(value: Any) -> str:
    names = {list: "a list", str: "a string", bool: "a boolean", int: "a number",
             float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)
