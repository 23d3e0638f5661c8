"""safety: what another user could have written is refused, with a message that says why
(a pickle runs code) and what to do; private directories are made 0700."""

from __future__ import annotations

import os
import pickle
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from phasewise.core.errors import PhasewiseError, UnsafeStoreError
from phasewise.durable.safety import check_open, check_private, make_private_dir

pytestmark = pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX owners and modes")

ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
OTHER_UID = 65534  # nobody


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def private(tmp_path: Path) -> Path:
    directory = tmp_path / "private"
    directory.mkdir(mode=0o700)
    os.chmod(directory, 0o700)
    return directory


@pytest.fixture(params=[0o002, 0o277], ids=["group-writable", "owner-unwritable"])
def umask(request: pytest.FixtureRequest) -> Iterator[None]:
    """A umask that would leave a new directory writable by its group, or not by us."""
    old = os.umask(request.param)
    yield
    os.umask(old)


def _file(directory: Path, mode: int = 0o600) -> Path:
    path = directory / "state.pkl"
    path.write_bytes(b"pickle")
    os.chmod(path, mode)
    return path


def test_a_private_file_and_directory_pass(private: Path) -> None:
    check_private(private, "the run's state")
    check_private(_file(private), "the run's state")


@pytest.mark.parametrize(("mode", "who"), [(0o620, "its group"), (0o602, "any user"),
                                           (0o666, "any user")])
def test_a_file_others_can_write_is_refused_and_the_message_says_why(
        private: Path, mode: int, who: str) -> None:
    path = _file(private, mode)
    with pytest.raises(UnsafeStoreError) as caught:
        check_private(path, "the run's state")
    message = str(caught.value)
    assert str(path) in message
    assert "the run's state" in message
    assert f"can be written by {who}" in message
    assert f"mode {mode:04o}" in message
    assert "a pickle runs code" in message
    assert f"chmod go-w {path}" in message
    assert caught.value.path == str(path)


def test_a_file_in_a_directory_others_can_write_is_refused(private: Path) -> None:
    path = _file(private)
    os.chmod(private, 0o777)
    with pytest.raises(UnsafeStoreError) as caught:
        check_private(path, "a cached result")
    message = str(caught.value)
    assert f"the directory holding it, {private}, can be written by any user" in message
    assert f"chmod go-w {private}" in message
    os.chmod(private, 0o770)
    with pytest.raises(UnsafeStoreError, match="can be written by its group"):
        check_private(path, "a cached result")


def test_a_sticky_directory_like_tmp_may_hold_a_private_entry(private: Path) -> None:
    # nobody else can rename or remove our entries in a sticky directory we (or root) own
    os.chmod(private, 0o1777)
    inner = private / "work"
    inner.mkdir(mode=0o700)
    check_private(_file(private), "the run's state")
    check_private(inner, "a work directory")
    with pytest.raises(UnsafeStoreError, match="can be written by any user"):
        check_private(private, "a work directory")  # the sticky directory itself


def test_a_directory_others_can_write_is_refused_itself(private: Path) -> None:
    os.chmod(private, 0o775)
    with pytest.raises(UnsafeStoreError, match=r"the directory can be written by its group"):
        check_private(private, "the result cache")


@pytest.mark.skipif(not ROOT, reason="only root can give a file to another user")
def test_a_file_of_another_user_is_refused(private: Path) -> None:
    path = _file(private)
    os.chown(path, OTHER_UID, -1)
    with pytest.raises(UnsafeStoreError, match=rf"belongs to .*uid {OTHER_UID}.*not to you"):
        check_private(path, "the run's state")


@pytest.mark.skipif(not ROOT, reason="only root can give a directory to another user")
def test_a_directory_of_another_user_is_refused_as_the_holder(private: Path) -> None:
    path = _file(private)
    os.chown(private, OTHER_UID, -1)
    with pytest.raises(UnsafeStoreError, match=rf"{private}, belongs to .*uid {OTHER_UID}"):
        check_private(path, "the run's state")
    os.chmod(private, 0o1777)  # sticky does not help when its owner is someone else
    with pytest.raises(UnsafeStoreError, match="belongs to"):
        check_private(path, "the run's state")


def test_a_symlink_is_judged_by_what_it_points_at(private: Path, tmp_path: Path) -> None:
    public = tmp_path / "public"
    public.mkdir()
    os.chmod(public, 0o777)
    target = _file(public)
    link = private / "link.pkl"
    link.symlink_to(target)
    with pytest.raises(UnsafeStoreError, match=str(public)):
        check_private(link, "the run's state")


def test_check_open_judges_the_file_actually_opened(private: Path) -> None:
    path = _file(private)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert check_open(fd, path, "x").st_size == len(b"pickle")
        os.chmod(path, 0o666)  # what was opened changed after a check of the path
        with pytest.raises(UnsafeStoreError, match="can be written by any user"):
            check_open(fd, path, "x")
    finally:
        os.close(fd)


def test_a_missing_path_is_an_os_error(private: Path) -> None:
    with pytest.raises(FileNotFoundError):
        check_private(private / "nothing", "x")


def test_make_private_dir_makes_every_missing_directory_0700(private: Path,
                                                             umask: None) -> None:
    made = make_private_dir(private / "a" / "b" / "c")
    assert made == private / "a" / "b" / "c"
    for path in (private / "a", private / "a" / "b", made):
        assert path.is_dir()
        assert _mode(path) == 0o700, path


def test_make_private_dir_accepts_an_existing_private_directory(private: Path) -> None:
    (private / "work").mkdir(mode=0o755)
    os.chmod(private / "work", 0o755)  # readable by others is fine, writable is not
    assert make_private_dir(private / "work") == private / "work"
    assert _mode(private / "work") == 0o755


def test_make_private_dir_refuses_a_directory_others_can_write(private: Path) -> None:
    (private / "work").mkdir()
    os.chmod(private / "work", 0o777)
    with pytest.raises(UnsafeStoreError, match="the result cache"):
        make_private_dir(private / "work", "the result cache")


def test_make_private_dir_refuses_a_file(private: Path) -> None:
    path = _file(private)
    with pytest.raises(NotADirectoryError, match="is a file, not a directory") as caught:
        make_private_dir(path)
    assert caught.value.filename == str(path)


def test_the_error_is_a_phasewise_error_that_pickles() -> None:
    error = UnsafeStoreError("refused", "/some/path")
    assert isinstance(error, PhasewiseError)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is UnsafeStoreError
    assert (str(copy), copy.path) == ("refused", "/some/path")
