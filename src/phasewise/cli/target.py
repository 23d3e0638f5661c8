"""Loading the Pipeline a CLI TARGET names: ``path/to/file.py[:attr]`` or ``module[:attr]``.

Every way a target can be wrong ends in ``TargetError`` with a short message that
names the file (and line, for a syntax error); the CLI prints it without a traceback.

A file target runs as a module under a unique name, is registered in ``sys.modules``
and is marked for pickling by value with cloudpickle, so executors in other processes
can run its handlers without being able to import the file.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import re
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from phasewise.core.errors import PhasewiseError, TargetError
from phasewise.core.model import Pipeline

__all__ = ["Target", "load_pipeline", "parse_target"]

_ATTR = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


@dataclass(frozen=True, slots=True)
class Target:
    """A parsed TARGET: a file path or a dotted module name, and an optional attribute."""

    source: str
    attr: str | None
    is_file: bool

    @property
    def label(self) -> str:
        return self.source if self.attr is None else f"{self.source}:{self.attr}"


def parse_target(spec: str) -> Target:
    """Split ``spec`` into source and attribute.

    The text after the last ``:`` is an attribute only if it is a (dotted) identifier,
    so ``C:\\pipelines\\build.py`` stays a path.
    """
    source, sep, attr = spec.rpartition(":")
    if not sep or not source or not _ATTR.match(attr):
        source, attr = spec, ""
    if not source:
        raise TargetError("the target is empty; give path/to/file.py[:attr] or module[:attr]")
    is_file = source.endswith(".py") or "/" in source or os.sep in source or Path(source).is_file()
    return Target(source, attr or None, is_file)


def load_pipeline(spec: str) -> Pipeline:
    """The Pipeline that ``spec`` names; ``TargetError`` says what is wrong otherwise."""
    target = parse_target(spec)
    module = _load_file(target.source) if target.is_file else _load_module(target.source)
    if target.attr is None:
        return _single_pipeline(module, target)
    return _pipeline_attribute(module, target)


# ── loading ─────────────────────────────────────────────────────────────────


def _load_file(source: str) -> ModuleType:
    path = Path(source).resolve()
    if not path.exists():
        raise TargetError(f"target file {source!r} does not exist")
    if not path.is_file():
        raise TargetError(f"target {source!r} is not a file")
    name = _module_name(path)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise TargetError(f"cannot load {source!r} as a Python module")
    module = importlib.util.module_from_spec(spec)
    directory = str(path.parent)
    if directory not in sys.path:
        sys.path.insert(0, directory)  # so the file can import its neighbours
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:
        sys.modules.pop(name, None)
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise _import_failure(source, path, exc) from None
    import cloudpickle

    cloudpickle.register_pickle_by_value(module)
    return module


def _module_name(path: Path) -> str:
    """A name no other module has: the file's stem plus a hash of its full path."""
    stem = re.sub(r"\W", "_", path.stem)
    digest = hashlib.sha1(str(path).encode("utf-8")).hexdigest()[:10]
    return f"_phasewise_target_{stem}_{digest}"


def _load_module(source: str) -> ModuleType:
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # like `python -m`: modules under the current dir
    try:
        return importlib.import_module(source)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (source == exc.name or source.startswith(exc.name + ".")):
            raise TargetError(
                f"no file or module named {source!r} (a file target must end in .py)"
            ) from None
        raise _import_failure(source, None, exc) from None
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise _import_failure(source, None, exc) from None


def _import_failure(source: str, path: Path | None, exc: BaseException) -> TargetError:
    """One line for an exception raised while the target was imported."""
    if isinstance(exc, SyntaxError):
        where = exc.filename or source
        line = f", line {exc.lineno}" if exc.lineno else ""
        return TargetError(f"syntax error in {where}{line}: {exc.msg}")
    if isinstance(exc, PhasewiseError):  # an invalid Pipeline(...) at module level
        return TargetError(f"invalid pipeline in {source}{_line_in(path, exc)}: {exc}")
    if isinstance(exc, SystemExit):
        return TargetError(f"{source} called sys.exit({exc.code!r}) while being imported")
    message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return TargetError(f"importing {source} failed{_line_in(path, exc)}: {message}")


def _line_in(path: Path | None, exc: BaseException) -> str:
    """``", line N"`` for the deepest frame of ``exc``'s traceback inside ``path``."""
    if path is None:
        return ""
    lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(path)]
    return f", line {lines[-1]}" if lines else ""


# ── finding the pipeline ────────────────────────────────────────────────────


def _pipelines_in(module: ModuleType) -> dict[str, Pipeline]:
    """Module-level Pipeline objects by name (one name per object)."""
    found: dict[str, Pipeline] = {}
    seen: set[int] = set()
    for name, value in vars(module).items():
        if isinstance(value, Pipeline) and id(value) not in seen and not name.startswith("__"):
            seen.add(id(value))
            found[name] = value
    return found


def _single_pipeline(module: ModuleType, target: Target) -> Pipeline:
    found = _pipelines_in(module)
    if len(found) == 1:
        return next(iter(found.values()))
    if not found:
        raise TargetError(f"{target.source} defines no Pipeline at module level")
    names = ", ".join(sorted(found))
    raise TargetError(
        f"{target.source} defines {len(found)} pipelines ({names}); "
        f"pick one, e.g. {target.source}:{min(found)}"
    )


def _pipeline_attribute(module: ModuleType, target: Target) -> Pipeline:
    value: Any = module
    assert target.attr is not None
    for part in target.attr.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            available = ", ".join(sorted(_pipelines_in(module))) or "none"
            raise TargetError(
                f"{target.source} has no attribute {target.attr!r} "
                f"(pipelines defined there: {available})"
            ) from None
    if not isinstance(value, Pipeline):
        raise TargetError(f"{target.label} is a {type(value).__name__}, not a Pipeline")
    return value
