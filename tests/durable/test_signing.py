"""signing: the per-user key, signed pickles that refuse to load when changed, atomic
private files, and large values stored and loaded without copies."""

from __future__ import annotations

import os
import pickle
import stat
import struct
from pathlib import Path
from typing import Any

import pytest

from phasewise.core.errors import TamperedError, UnsafeStoreError
from phasewise.durable import signing

POSIX = hasattr(os, "geteuid")
posix_only = pytest.mark.skipif(not POSIX, reason="POSIX owners and modes")


@pytest.fixture(autouse=True)
def key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test signs with a key of its own, never the one in ~/.config."""
    path = tmp_path / "config" / "phasewise" / "key"
    monkeypatch.setenv(signing.KEY_ENV, str(path))
    return path


@pytest.fixture
def store(tmp_path: Path) -> Path:
    directory = tmp_path / "store"
    directory.mkdir(mode=0o700)
    os.chmod(directory, 0o700)
    return directory


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


class Blob:
    """A numpy-like value: its bytes go out of band under pickle protocol 5, and what it is
    rebuilt from is kept as is (a view of the loaded data, if that is what it gets)."""

    def __init__(self, data: Any) -> None:
        self.data = data

    def __reduce_ex__(self, protocol: Any) -> Any:
        return Blob, (pickle.PickleBuffer(self.data),)


class Tracked:
    """Unpickling it is seen in ``LOADED``."""

    def __reduce__(self) -> Any:
        return _record, ("unpickled",)


LOADED: list[str] = []


def _record(event: str) -> None:
    LOADED.append(event)


# the key


@posix_only
def test_the_key_is_made_on_first_use_0600_in_a_0700_directory(key_file: Path) -> None:
    assert not key_file.exists()
    mac = signing.sign(b"data")
    assert key_file.exists()
    assert _mode(key_file) == 0o600
    assert _mode(key_file.parent) == 0o700
    assert _mode(key_file.parent.parent) == 0o700
    assert len(bytes.fromhex(key_file.read_text().strip())) == 32
    assert signing.sign(b"data") == mac  # the same key next time
    assert not list(key_file.parent.glob(".key.*"))  # no temp file left


def test_the_key_path_follows_the_environment(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(signing.KEY_ENV)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert signing.key_path() == tmp_path / "xdg" / "phasewise" / "key"
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/not/allowed")
    assert signing.key_path() == tmp_path / "home" / ".config" / "phasewise" / "key"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    assert signing.key_path() == tmp_path / "home" / ".config" / "phasewise" / "key"


def test_sign_and_verify() -> None:
    mac = signing.sign(b"some bytes")
    assert len(mac) == 32
    assert signing.verify(b"some bytes", mac)
    assert signing.verify(memoryview(bytearray(b"some bytes")), mac)
    assert not signing.verify(b"some bytez", mac)
    assert not signing.verify(b"some bytes", bytes(32))


@posix_only
@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o660, 0o606])
def test_a_key_file_others_can_read_or_write_is_refused(key_file: Path, mode: int) -> None:
    signing.sign(b"make the key")
    os.chmod(key_file, mode)
    with pytest.raises(UnsafeStoreError) as caught:
        signing.sign(b"data")
    message = str(caught.value)
    assert str(key_file) in message
    assert "chmod" in message
    os.chmod(key_file, 0o600)
    signing.sign(b"data")  # fixed: usable again


@posix_only
def test_a_key_in_a_directory_others_can_write_is_refused(key_file: Path) -> None:
    signing.sign(b"make the key")
    os.chmod(key_file.parent, 0o777)
    with pytest.raises(UnsafeStoreError, match="can be written by any user"):
        signing.sign(b"data")


@pytest.mark.parametrize("text", ["", "not hex at all", "abcd\n"])
def test_a_key_file_that_holds_no_key_is_refused(key_file: Path, text: str) -> None:
    key_file.parent.mkdir(parents=True, mode=0o700)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, text.encode())
    os.close(fd)
    with pytest.raises(UnsafeStoreError, match="is not a key"):
        signing.sign(b"data")


def test_data_signed_with_another_key_does_not_load(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    data = signing.dump_signed({"a": 1})
    monkeypatch.setenv(signing.KEY_ENV, str(tmp_path / "other" / "key"))
    with pytest.raises(TamperedError, match="HMAC does not match"):
        signing.load_signed(data)


# signed pickles


@pytest.mark.parametrize("value", [None, 1, "text", b"\x00" * 10, {"a": [1, 2.5, (3,)]},
                                   bytearray(b"abc"), {1, 2, 3}])
def test_a_value_comes_back(value: Any) -> None:
    assert signing.load_signed(signing.dump_signed(value)) == value


def test_functions_and_meta_come_back() -> None:
    data = signing.dump_signed(lambda x: x * 3, {"phase": "triple", "n": 1})
    assert signing.load_signed(data)(2) == 6


def _layout(data: bytes) -> dict[str, int]:
    """Offsets of a spot in each part of a signed pickle."""
    return {"magic": 2, "mac": 10, "meta": 45, "pickle": len(data) - 40,
            "table": len(data) - 3}


@pytest.mark.parametrize("part", ["magic", "mac", "meta", "pickle", "table"])
def test_a_changed_byte_anywhere_is_refused(part: str) -> None:
    data = signing.dump_signed({"payload": "x" * 100}, {"phase": "p"})
    changed = bytearray(data)
    changed[_layout(data)[part]] ^= 0x01
    with pytest.raises(TamperedError) as caught:
        signing.load_signed(bytes(changed), "the result of phase 'p'")
    assert "the result of phase 'p' failed its integrity check" in str(caught.value)
    assert caught.value.what == "the result of phase 'p'"
    assert isinstance(caught.value, UnsafeStoreError)


@pytest.mark.parametrize("cut", [1, 20, 50])
def test_a_truncated_or_extended_pickle_is_refused(cut: int) -> None:
    data = signing.dump_signed(list(range(100)))
    with pytest.raises(TamperedError):
        signing.load_signed(data[:-cut])
    with pytest.raises(TamperedError):
        signing.load_signed(data + b"\x00" * cut)
    with pytest.raises(TamperedError, match="not a signed phasewise pickle"):
        signing.load_signed(data[:cut])


def test_nothing_is_unpickled_before_the_mac_is_checked() -> None:
    LOADED.clear()
    data = signing.dump_signed(Tracked())
    signing.load_signed(data)
    assert LOADED == ["unpickled"]
    changed = bytearray(data)
    changed[-30] ^= 0x01
    with pytest.raises(TamperedError):
        signing.load_signed(bytes(changed))
    assert LOADED == ["unpickled"]


def test_a_tampered_error_pickles() -> None:
    error = TamperedError("changed", "/p", "the state")
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), str(copy), copy.path, copy.what) == (TamperedError, "changed", "/p",
                                                            "the state")


# files


@posix_only
def test_write_signed_makes_a_0600_file_and_leaves_no_temp_file(store: Path) -> None:
    path = store / "result.pkl"
    size = signing.write_signed(path, {"a": 1}, {"phase": "p"})
    assert size == path.stat().st_size
    assert _mode(path) == 0o600
    assert list(store.iterdir()) == [path]
    assert signing.read_signed(path) == {"a": 1}
    assert signing.read_signed_meta(path) == {"phase": "p"}


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(store: Path) -> None:
    path = store / "result.pkl"
    signing.write_signed(path, "old")
    with pytest.raises(TypeError):
        signing.write_signed(path, ["x" * 100_000, lambda: None, _Unpicklable()])
    assert list(store.iterdir()) == [path]
    assert signing.read_signed(path) == "old"


class _Unpicklable:
    def __reduce__(self) -> Any:
        raise TypeError("cannot pickle this")


def test_read_signed_meta_unpickles_nothing(store: Path) -> None:
    LOADED.clear()
    signing.write_signed(store / "x.pkl", Tracked(), {"phase": "p", "created": 1.5})
    assert signing.read_signed_meta(store / "x.pkl") == {"phase": "p", "created": 1.5}
    assert LOADED == []
    (store / "junk").write_bytes(b"junk")
    with pytest.raises(TamperedError, match="not a signed phasewise pickle"):
        signing.read_signed_meta(store / "junk")


def test_a_changed_file_is_refused_naming_it(store: Path) -> None:
    path = store / "result.pkl"
    signing.write_signed(path, list(range(1000)))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(TamperedError, match=rf"{path} failed its integrity check") as caught:
        signing.read_signed(path)
    assert caught.value.path == str(path)


@posix_only
@pytest.mark.parametrize("target", ["file", "directory"])
def test_read_signed_refuses_what_others_can_write(store: Path, target: str) -> None:
    path = store / "result.pkl"
    signing.write_signed(path, "value")
    os.chmod(path if target == "file" else store, 0o666 if target == "file" else 0o777)
    with pytest.raises(UnsafeStoreError, match="a pickle runs code") as caught:
        signing.read_signed(path, "the run's state")
    assert not isinstance(caught.value, TamperedError)


# large values


BIG = 8 << 20  # above the size from which hashing runs beside the I/O


@pytest.mark.parametrize("kind", [bytes, bytearray])
def test_a_large_bytes_value_round_trips_through_a_file(store: Path, kind: type) -> None:
    value = kind(os.urandom(1 << 16) * (BIG >> 16))
    signing.write_signed(store / "big.pkl", value)
    loaded = signing.read_signed(store / "big.pkl")
    assert type(loaded) is kind and loaded == value
    again = signing.load_signed(signing.dump_signed(value))
    assert type(again) is kind and again == value


@pytest.mark.parametrize("kind", [bytes, bytearray])
def test_a_large_bytes_value_goes_out_of_band(store: Path, kind: type) -> None:
    # the table at the end (module docstring): one buffer, of the value's size and kind,
    # and a pickle of a few bytes -- so loading reads the value into its own object
    signing.write_signed(store / "big.pkl", kind(BIG))
    data = (store / "big.pkl").read_bytes()
    count, pickle_size = struct.unpack("<QQ", data[-16:])
    size, buffer_kind = struct.unpack("<QB", data[-25:-16])
    assert (count, size, buffer_kind) == (1, BIG, 1 if kind is bytes else 2)
    assert pickle_size < 200


def test_an_out_of_band_value_is_loaded_as_a_view_of_what_was_read(store: Path) -> None:
    payload = bytearray(os.urandom(1 << 16) * (BIG >> 16))
    path = store / "blob.pkl"
    signing.write_signed(path, [Blob(memoryview(payload)), Blob(memoryview(payload[:100]))])
    loaded = signing.read_signed(path)
    assert [type(x) for x in loaded] == [Blob, Blob]
    # each rebuilt from the buffer it was handed: views of one block the file was read into
    first, second = (blob.data for blob in loaded)
    assert isinstance(first, memoryview) and isinstance(second, memoryview)
    assert first.obj is second.obj
    assert memoryview(first.obj).nbytes >= BIG
    assert not first.readonly
    assert first == payload and second == payload[:100]


@pytest.mark.parametrize(("data", "kind"), [(bytearray(BIG), bytearray), (bytes(BIG), bytes)])
def test_a_bytes_or_bytearray_buffer_is_read_into_an_object_of_its_own(
        store: Path, data: bytes | bytearray, kind: type) -> None:
    signing.write_signed(store / "blob.pkl", Blob(data))
    loaded: Any = signing.read_signed(store / "blob.pkl").data
    assert type(loaded).__name__ == kind.__name__  # what the pickle gets, no bigger block
    assert len(loaded) == BIG and loaded == data


@pytest.mark.parametrize("value", [
    Blob(bytearray(BIG)), Blob(bytes(BIG)), Blob(memoryview(bytearray(BIG))), bytes(BIG),
    [b"x" * 100, Blob(bytes(BIG)), Blob(memoryview(bytearray(BIG))), Blob(bytearray(BIG))],
], ids=["bytearray buffer", "bytes buffer", "shared buffer", "bytes value", "mixed"])
@pytest.mark.parametrize("where", [0.1, 0.5, 0.9])
def test_a_changed_byte_in_a_large_file_is_refused(store: Path, value: Any,
                                                   where: float) -> None:
    path = store / "blob.pkl"
    size = signing.write_signed(path, value)
    with open(path, "r+b") as f:
        f.seek(int(size * where))
        byte = f.read(1)
        f.seek(int(size * where))
        f.write(bytes([byte[0] ^ 1]))
    with pytest.raises(TamperedError, match="HMAC does not match"):
        signing.read_signed(path)


def test_a_numpy_array_loads_writable_and_equal(store: Path) -> None:
    np = pytest.importorskip("numpy")
    array = np.arange(BIG // 8, dtype=np.float64).reshape(1024, -1)
    signing.write_signed(store / "a.pkl", {"a": array, "f": np.asfortranarray(array)})
    loaded = signing.read_signed(store / "a.pkl")
    assert (loaded["a"] == array).all() and (loaded["f"] == array).all()
    assert loaded["f"].flags.f_contiguous
    loaded["a"][0, 0] = -1.0  # a result can be changed, as one just computed can
    assert loaded["a"][0, 0] == -1.0
