"""The result cache: keys that change exactly when the code or the inputs do (the user's
helper functions included), and a store that refuses what it should not load."""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import pickle
import stat
import subprocess
import sys
import textwrap
import threading
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

import phasewise
from phasewise.core.context import PhaseContext
from phasewise.core.errors import UnsafeStoreError
from phasewise.core.phase import Phase, parse_ttl
from phasewise.durable import signing
from phasewise.durable.cache import (
    CacheEntry,
    ResultCache,
    cache_key,
    code_digest,
    try_cache_key,
)
from phasewise.durable.digest import Digester

POSIX = hasattr(os, "geteuid")


@pytest.fixture(autouse=True)
def _key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test signs with a key of its own, never the one in ~/.config."""
    monkeypatch.setenv(signing.KEY_ENV, str(tmp_path / "config" / "key"))


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir(mode=0o700)
    os.chmod(path, 0o700)
    return path


class Clock:
    """A wall clock that moves only when told to."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _script(source: str, name: str = "pw_script") -> dict[str, Any]:
    """Run ``source`` as the user's script would run: in a fresh module namespace."""
    namespace: dict[str, Any] = {"__name__": name}
    exec(compile(textwrap.dedent(source), f"/project/{name}.py", "exec"), namespace)
    return namespace


def _module(directory: Path, name: str, source: str,
            monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """Import ``source`` from a file in ``directory`` as module ``name`` (replacing any
    module of that name, as editing the file and running again does)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


def _key(handler: Callable[..., Any], context: Mapping[str, Any] | None = None,
         **kwargs: Any) -> str:
    key = cache_key(Phase("phase", handler), context, **kwargs)
    assert key is not None
    return key


# keys: inputs


def test_a_key_is_sha256_hex_and_the_same_each_time() -> None:
    def handler(context: Any) -> Any:
        return context["a"]

    key = _key(handler, {"a": [1, 2]})
    assert len(key) == 64 and int(key, 16) >= 0
    assert _key(handler, {"a": [1, 2]}) == key
    assert _key(handler, PhaseContext("phase", {"a": [1, 2]})) == key


def test_a_changed_input_changes_the_key() -> None:
    def handler(context: Any) -> Any:
        return context

    keys = {_key(handler, c) for c in ({"a": 1}, {"a": 2}, {"b": 1}, {"a": 1, "b": 1},
                                       {"a": "1"}, {"a": None}, None)}
    assert len(keys) == 7


def test_the_phase_name_params_and_phasewise_version_are_in_the_key(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def handler() -> None:
        return None

    base = _key(handler)
    assert cache_key(Phase("other", handler), None) != base
    assert _key(handler, params={"n": 1}) != _key(handler, params={"n": 2})
    assert _key(handler, params={"n": 1, "m": 2}) == _key(handler, params={"m": 2, "n": 1})
    monkeypatch.setattr(phasewise, "__version__", "99.0")
    assert _key(handler) != base


class Blob:
    """A numpy-like input whose bytes go out of band (pickle protocol 5)."""

    def __init__(self, data: bytearray) -> None:
        self.data = data

    def __reduce_ex__(self, protocol: Any) -> Any:
        return Blob, (pickle.PickleBuffer(self.data),)


def test_out_of_band_buffers_are_hashed_by_content() -> None:
    def handler(context: Any) -> Any:
        return context

    data = bytearray(os.urandom(1 << 20))
    key = _key(handler, {"a": Blob(data)})
    assert _key(handler, {"a": Blob(bytearray(data))}) == key
    data[12345] ^= 1
    assert _key(handler, {"a": Blob(data)}) != key


def test_inputs_that_cannot_be_pickled_give_no_key_and_a_reason() -> None:
    def handler(context: Any) -> Any:
        return context

    phase = Phase("phase", handler)
    assert cache_key(phase, {"ok": 1, "lock": threading.Lock()}) is None
    key, why = try_cache_key(phase, {"lock": threading.Lock()})
    assert key is None
    assert why is not None and "'lock'" in why and "pickle" in why
    assert try_cache_key(phase, {"ok": 1}) == (cache_key(phase, {"ok": 1}), None)
    assert cache_key(phase, None, {"gen": (i for i in range(3))}) is None


def test_the_key_is_the_same_in_another_process(tmp_path: Path) -> None:
    script = tmp_path / "flow.py"
    script.write_text(textwrap.dedent('''
        import dataclasses, enum, functools, sys
        from phasewise.core.phase import Phase
        from phasewise.durable.cache import cache_key

        @dataclasses.dataclass
        class Point:
            x: int
            tags: frozenset = frozenset()

        class Kind(enum.Enum):
            A = "a"

        def helper(value):
            return value in {"x", "y", "z"}

        def handler(context):
            return helper(context["p"].x)

        inputs = {"p": Point(1, frozenset({"u", "v", "w"})), "s": {"s", "t", "u"},
                  "k": Kind.A, "f": helper}
        print(cache_key(Phase("p", handler), inputs),
              cache_key(Phase("q", functools.partial(handler, context=inputs)), None))
    '''))
    keys = {
        subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                       check=True, timeout=60,
                       env={**os.environ, "PYTHONHASHSEED": seed}).stdout
        for seed in ("1", "2", "3")
    }
    assert len(keys) == 1, keys
    assert "None" not in keys.pop()


# keys: code


HANDLER_V1 = """
    def handler(context):
        return context["a"] + 1
"""


def test_an_edited_handler_changes_the_key_and_the_same_source_does_not() -> None:
    first = _script(HANDLER_V1)["handler"]
    again = _script(HANDLER_V1)["handler"]  # a new run of the same script
    edited = _script(HANDLER_V1.replace("+ 1", "+ 2"))["handler"]
    assert first is not again
    assert _key(first, {"a": 1}) == _key(again, {"a": 1})
    assert _key(edited, {"a": 1}) != _key(first, {"a": 1})


def test_moving_a_handler_to_another_line_or_file_keeps_the_key() -> None:
    first = _script(HANDLER_V1)["handler"]
    moved = _script("\n\n\n# a comment\n" + textwrap.dedent(HANDLER_V1), "other")["handler"]
    assert first.__code__.co_firstlineno != moved.__code__.co_firstlineno
    assert code_digest(moved) != ""
    assert _key(first) == _key(moved)


SCRIPT = """
    LIMIT = 10

    def clean(value):
        return value.strip()

    def normalise(value):
        return clean(value).lower()

    def handler(context):
        return [normalise(v) for v in context["rows"]][:LIMIT]
"""


@pytest.mark.parametrize(("old", "new"), [
    ("value.strip()", "value.strip(' ')"),  # a helper's helper
    (".lower()", ".upper()"),  # the helper the handler calls
    ("LIMIT = 10", "LIMIT = 20"),  # a global the handler reads
])
def test_editing_what_the_handler_reaches_in_the_same_script_changes_the_key(
        old: str, new: str) -> None:
    before = _script(SCRIPT)["handler"]
    after = _script(SCRIPT.replace(old, new))["handler"]
    assert _key(before) == _key(_script(SCRIPT)["handler"])
    assert _key(after) != _key(before)


def test_editing_a_helper_in_a_module_of_the_users_changes_the_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = """
        def clean(value):
            return value.strip()
    """

    def handlers_using(helpers: types.ModuleType) -> tuple[Callable[..., Any], ...]:
        by_attribute = _script("""
            import pw_helpers

            def handler(context):
                return pw_helpers.clean(context["v"])
        """)
        by_name = _script("""
            from pw_helpers import clean

            def handler(context):
                return clean(context["v"])
        """)
        assert by_attribute["pw_helpers"] is helpers
        return by_attribute["handler"], by_name["handler"]

    v1 = handlers_using(_module(tmp_path / "v1", "pw_helpers", source, monkeypatch))
    same = handlers_using(_module(tmp_path / "same", "pw_helpers", source, monkeypatch))
    v2 = handlers_using(_module(tmp_path / "v2", "pw_helpers",
                                source.replace("strip()", "rstrip()"), monkeypatch))
    for way in (0, 1):
        assert _key(v1[way]) == _key(same[way])
        assert _key(v2[way]) != _key(v1[way])


def test_a_helper_reached_through_a_closure_or_a_nested_function_counts() -> None:
    source = """
        def helper(x):
            return x + 1

        def make():
            inner_helper = helper
            def handler(context):
                return inner_helper(1)
            return handler

        def outer(context):
            def nested():
                return helper(2)
            return nested()

        closed = make()
    """
    before, after = _script(source), _script(source.replace("x + 1", "x + 3"))
    for name in ("closed", "outer"):
        assert _key(before[name]) != _key(after[name]), name


RECURSIVE = """
    def parse(text):
        return [term(t) for t in text.split("+")]

    def term(text):
        return parse(text[1:-1]) if text.startswith("(") else text.strip()

    def entry(context):
        return parse(context["text"])

    def other(context):
        return term(context["text"])
"""


def test_functions_that_call_each_other_have_keys_that_follow_their_code() -> None:
    before = _script(RECURSIVE)
    after = _script(RECURSIVE.replace("text.strip()", "text"))
    for name in ("entry", "other"):
        assert _key(before[name]) == _key(_script(RECURSIVE)[name]), name
        assert _key(after[name]) != _key(before[name]), name
    for name in ("parse", "term"):
        assert code_digest(before[name]) == code_digest(_script(RECURSIVE)[name]), name
        assert code_digest(after[name]) != code_digest(before[name]), name


@pytest.mark.parametrize("order", [("entry", "other", "parse", "term"),
                                   ("term", "parse", "other", "entry")])
def test_a_shared_digester_gives_what_a_fresh_one_gives_in_any_order(
        order: tuple[str, ...]) -> None:
    namespace = _script(RECURSIVE + SCRIPT)
    shared = Digester()
    for name in order:
        assert code_digest(namespace[name], shared) == code_digest(namespace[name]), name
    assert len({code_digest(namespace[name]) for name in order}) == len(order)


def test_a_method_handler_covers_its_class_and_its_object() -> None:
    source = """
        class Model:
            def __init__(self, scale):
                self.scale = scale

            def _weights(self):
                return [1, 2]

            def predict(self, context):
                return [w * self.scale for w in self._weights()]

        model = Model(2)
    """
    before = _script(source)
    after = _script(source.replace("[1, 2]", "[1, 3]"))
    assert _key(before["model"].predict) == _key(_script(source)["model"].predict)
    assert _key(before["model"].predict) != _key(after["model"].predict)
    assert _key(before["model"].predict) != _key(before["Model"](3).predict)


def test_a_callable_object_and_a_class_with_descriptors() -> None:
    source = """
        import functools

        class Step:
            factor = 2

            def __call__(self, context):
                return self.double(1) + self.half

            @staticmethod
            def double(x):
                return x * 2

            @property
            def half(self):
                return 0.5

            @functools.cached_property
            def heavy(self):
                return 1
    """
    base = _key(_script(source)["Step"]())
    for old, new in (("x * 2", "x * 4"), ("0.5", "0.25"), ("return 1", "return 2"),
                     ("factor = 2", "factor = 3")):
        assert _key(_script(source.replace(old, new))["Step"]()) != base, old


def test_a_handlers_defaults_are_in_the_key() -> None:
    source = """
        def handler(context=None, limit=10, *, mode="fast"):
            return limit, mode
    """
    base = _key(_script(source)["handler"])
    assert _key(_script(source.replace("10", "20"))["handler"]) != base
    assert _key(_script(source.replace('"fast"', '"slow"'))["handler"]) != base


def test_partial_arguments_are_in_the_key() -> None:
    def handler(n: int, scale: float = 1.0) -> float:
        return n * scale

    base = _key(functools.partial(handler, 1))
    assert _key(functools.partial(handler, 1)) == base
    assert _key(functools.partial(handler, 2)) != base
    assert _key(functools.partial(handler, 1, scale=2.0)) != base
    edited = _script("def handler(n, scale=1.0):\n    return n * scale * 2\n")["handler"]
    assert _key(functools.partial(edited, 1)) != base


def test_a_handler_that_reaches_something_unpicklable_still_has_a_key() -> None:
    namespace = _script("""
        import threading
        LOCK = threading.Lock()

        def handler(context):
            with LOCK:
                return 1
    """)
    assert isinstance(_key(namespace["handler"]), str)


def test_library_code_is_named_not_walked() -> None:
    import json as library

    def handler(context: Any) -> Any:
        return library.dumps(context)

    assert _key(handler) == _key(handler)
    assert code_digest(library.dumps) == code_digest(library.dumps)
    assert code_digest(handler) != code_digest(lambda: None)


def test_import_phasewise_does_not_load_the_durable_modules() -> None:
    code = ("import sys, phasewise\n"
            "[getattr(phasewise, n) for n in phasewise.__all__]\n"
            "print([m for m in sys.modules if m.startswith('phasewise.durable.')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    loaded = json.loads(out.strip().replace("'", '"'))
    assert not {"phasewise.durable.cache", "phasewise.durable.signing",
                "phasewise.durable.safety"} & set(loaded)


# the store


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


KEY = "ab" + "0" * 62
OTHER = "cd" + "1" * 62


def test_a_stored_result_is_a_hit_and_an_unknown_key_a_miss(workdir: Path) -> None:
    cache = ResultCache(workdir / "_cache")
    assert not cache.get(KEY).hit  # nothing there, not even the directory
    assert cache.put(KEY, "fit", {"w": [1.0, 2.0]}) is None
    found = cache.get(KEY)
    assert (found.hit, found.value, found.warning) == (True, {"w": [1.0, 2.0]}, None)
    assert not cache.get(OTHER).hit
    assert ResultCache(workdir / "_cache").get(KEY).value == {"w": [1.0, 2.0]}


def test_a_bad_key_is_refused(workdir: Path) -> None:
    with pytest.raises(ValueError, match="not a cache key"):
        ResultCache(workdir).get("../../etc/passwd")


@pytest.mark.skipif(not POSIX, reason="POSIX modes")
def test_entries_are_0600_files_in_0700_directories(workdir: Path) -> None:
    old = os.umask(0o002)  # a umask that would leave new directories group-writable
    try:
        cache = ResultCache(workdir / "_cache")
        cache.put(KEY, "fit", 1)
    finally:
        os.umask(old)
    path = cache.path_for(KEY)
    assert path == workdir / "_cache" / "ab" / f"{KEY}.pkl"
    assert _mode(path) == 0o600
    assert _mode(path.parent) == 0o700
    assert _mode(workdir / "_cache") == 0o700


def test_an_entry_expires_after_its_ttl(workdir: Path) -> None:
    clock = Clock()
    cache = ResultCache(workdir, clock=clock)
    cache.put(KEY, "fit", "result")
    ttl = parse_ttl("500ms")
    assert ttl is not None
    clock.now += ttl * 0.9
    assert cache.get(KEY, ttl).hit
    assert cache.get(KEY, None).hit
    clock.now += ttl * 0.2
    assert not cache.get(KEY, ttl).hit  # expired
    assert cache.get(KEY, parse_ttl("24h")).hit  # a longer ttl still takes it
    assert cache.get(KEY, None).hit
    clock.now -= 3600  # stamped in the future (the clock was set back): not trusted
    assert not cache.get(KEY, None).hit


def test_the_ttl_runs_from_the_stored_time_not_the_file_time(workdir: Path) -> None:
    clock = Clock(now=1_000.0)  # long ago, by the wall clock
    cache = ResultCache(workdir, clock=clock)
    cache.put(KEY, "fit", "result")
    assert cache.get(KEY, 60.0).hit
    assert not ResultCache(workdir).get(KEY, 60.0).hit  # today's clock: expired


def test_a_tampered_entry_is_refused_removed_and_computed_again(workdir: Path) -> None:
    cache = ResultCache(workdir)
    cache.put(KEY, "fit", {"w": 1})
    path = cache.path_for(KEY)
    data = bytearray(path.read_bytes())
    data[-30] ^= 0x01
    path.write_bytes(bytes(data))
    found = cache.get(KEY)
    assert not found.hit and found.value is None
    assert found.warning is not None
    assert "phase 'fit'" in found.warning and str(path) in found.warning
    assert "integrity check" in found.warning and "runs again" in found.warning
    assert not path.exists()
    assert cache.put(KEY, "fit", {"w": 1}) is None  # the phase ran again
    assert cache.get(KEY).value == {"w": 1}


def test_an_entry_signed_with_another_key_is_refused(workdir: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    cache = ResultCache(workdir)
    cache.put(KEY, "fit", 1)
    monkeypatch.setenv(signing.KEY_ENV, str(tmp_path / "someone-else" / "key"))
    found = cache.get(KEY)
    assert not found.hit and "HMAC does not match" in (found.warning or "")


def test_an_entry_moved_to_another_key_is_refused(workdir: Path) -> None:
    cache = ResultCache(workdir)
    cache.put(KEY, "fit", "for KEY")
    target = cache.path_for(OTHER)
    target.parent.mkdir(mode=0o700)
    os.replace(cache.path_for(KEY), target)
    found = cache.get(OTHER)
    assert not found.hit and "another key" in (found.warning or "")
    assert not target.exists()


def test_an_entry_that_no_longer_loads_is_a_miss_with_a_warning(
        workdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = _module(tmp_path / "mod", "pw_results", "class Result:\n    pass\n",
                     monkeypatch)
    cache = ResultCache(workdir)
    cache.put(KEY, "fit", module.Result())
    monkeypatch.delitem(sys.modules, "pw_results")  # the class is gone (file renamed)
    found = cache.get(KEY)
    assert not found.hit
    assert "cannot be loaded" in (found.warning or "")
    assert "ModuleNotFoundError" in (found.warning or "")
    assert not cache.path_for(KEY).exists()


def test_a_value_that_cannot_be_pickled_is_a_warning_not_an_error(workdir: Path) -> None:
    cache = ResultCache(workdir)
    warning = cache.put(KEY, "fit", {"lock": threading.Lock()})
    assert warning is not None
    assert "phase 'fit'" in warning and "not cached" in warning and "pickle" in warning
    assert not cache.get(KEY).hit
    assert cache.entries() == []
    assert not [p for p in workdir.rglob("*") if p.is_file()]  # no temp file either


@pytest.mark.skipif(not POSIX, reason="POSIX modes")
def test_a_cache_directory_others_can_write_is_refused(workdir: Path) -> None:
    cache = ResultCache(workdir / "_cache")
    cache.put(KEY, "fit", 1)
    os.chmod(workdir / "_cache", 0o777)
    for attempt in (lambda: cache.get(KEY), lambda: cache.get(OTHER),
                    lambda: cache.put(OTHER, "fit", 2)):
        with pytest.raises(UnsafeStoreError) as caught:
            attempt()
        message = str(caught.value)
        assert str(workdir / "_cache") in message
        assert "the result cache" in message
        assert "a pickle runs code" in message
        assert "chmod go-w" in message


@pytest.mark.skipif(not POSIX, reason="POSIX modes")
def test_an_entry_others_can_write_is_refused(workdir: Path) -> None:
    cache = ResultCache(workdir)
    cache.put(KEY, "fit", 1)
    os.chmod(cache.path_for(KEY), 0o666)
    with pytest.raises(UnsafeStoreError, match="can be written by any user"):
        cache.get(KEY)


def test_entries_list_and_clear(workdir: Path) -> None:
    clock = Clock()
    cache = ResultCache(workdir, clock=clock)
    cache.put(KEY, "fit", "a" * 100)
    clock.now += 1
    cache.put(OTHER, "load", "b")
    third = "ef" + "2" * 62
    cache.put(third, "fit", "c")
    entries = cache.entries()
    assert [(e.phase, e.key) for e in entries] == [("fit", KEY), ("fit", third),
                                                   ("load", OTHER)]
    first = entries[0]
    assert isinstance(first, CacheEntry)
    assert first.created == 1_000_000.0
    assert first.path == cache.path_for(KEY) and first.size == first.path.stat().st_size
    assert cache.clear("fit") == 2
    assert [e.key for e in cache.entries()] == [OTHER]
    assert cache.clear("nothing") == 0
    assert cache.clear() == 1
    assert cache.entries() == []
    assert ResultCache(workdir / "never-made").entries() == []
    assert ResultCache(workdir / "never-made").clear() == 0
