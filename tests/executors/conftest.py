"""Fixtures for the executor tests."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from processes import MARK, descendants, describe, marked, wait_until_gone


@pytest.fixture
def no_process_left(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Marks every process the test starts; after the test, none may be left."""
    token = uuid.uuid4().hex
    monkeypatch.setenv(MARK, token)
    me = os.getpid()
    before = descendants(me)
    yield token
    left = wait_until_gone(lambda: (descendants(me) - before) | marked(token))
    assert not left, f"processes left behind: {describe(left)}"
