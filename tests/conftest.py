"""Shared fixtures for the phasewise test suite.

Tests import nothing from each other; helpers that several modules need live here as
fixtures.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, settings

from phasewise import Action, Pipeline, Store
from phasewise.testing.conformance import recording_store as _recording_store

# Property tests assert behaviour, never timing: no per-example deadline.
settings.register_profile(
    "phasewise",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("phasewise")


@pytest.fixture(autouse=True)
def _private_signing_key(tmp_path_factory: pytest.TempPathFactory,
                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Results and cache entries are signed with a per-user key: tests (and the
    processes they start, which inherit the variable) use one of their own, never the
    real ~/.config/phasewise/key."""
    monkeypatch.setenv("PHASEWISE_KEY_FILE", str(tmp_path_factory.mktemp("key") / "key"))


@pytest.fixture
def recording_store() -> Callable[[Pipeline], tuple[Store, list[Action]]]:
    """``make(pipeline) -> (store, actions)``: a Store whose every action is recorded.

    The actions are recorded by wrapping the pipeline's reducer, so they appear in
    exactly the order the Store reduced them.
    """

    return _recording_store
