"""Task: one attempt of a phase, runnable here or, through its payload, elsewhere."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import cloudpickle

from phasewise.core.task import Task

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # as a user's script is sent


def add_one(context: dict[str, Any]) -> int:
    return context["base"] + 1


def fails() -> None:
    raise ValueError("raised in the payload's handler")


def test_run_calls_the_handler_with_its_context() -> None:
    assert Task("p", add_one, {"base": 41}).run() == 42


def test_run_payload_runs_the_task_from_its_bytes() -> None:
    task = Task("p", add_one, {"base": 1})
    assert isinstance(task.payload, bytes)
    assert Task.run_payload(task.payload) == 2


def test_a_payload_run_in_another_process_points_its_traceback_at_the_source() -> None:
    done = subprocess.run(
        [sys.executable, "-c",
         "import sys; from phasewise.core.task import Task; "
         "Task.run_payload(sys.stdin.buffer.read())"],
        input=Task("p", fails).payload, capture_output=True, timeout=30,
    )
    assert done.returncode == 1
    err = done.stderr.decode()
    # pickled by value (the module is not importable there), still naming this file
    assert f'File "{__file__}"' in err, err
    assert 'raise ValueError("raised in the payload\'s handler")' in err, err
