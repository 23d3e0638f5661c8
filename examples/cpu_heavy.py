"""CPU-bound work: eight independent parallel phases, then a reduce.

Each ``chunk_N`` phase finds the number below ``LIMIT`` with the longest Collatz chain
among the numbers ≡ N (mod 8) — pure-Python loops, a few tenths of a second each.
``reduce`` picks the overall winner (below 400,000 that is 230,631, 443 steps).
On the thread executor the GIL makes the chunks take turns; on a process executor
they use every core:

    phasewise run examples/cpu_heavy.py --executor thread
    python examples/cpu_heavy.py
"""

from __future__ import annotations

import functools
import time
from typing import Any

from phasewise import Phase, Pipeline

LIMIT = 400_000
CHUNKS = 8


def collatz_steps(n: int) -> int:
    """How many numbers the Collatz sequence from ``n`` visits, ``n`` and 1 included."""
    steps = 1
    while n != 1:
        n = n >> 1 if n & 1 == 0 else 3 * n + 1
        steps += 1
    return steps


def longest_chain(offset: int) -> dict[str, Any]:
    """The longest chain among 1 ≤ n < LIMIT with n ≡ offset (mod CHUNKS)."""
    started = time.perf_counter()
    best, best_steps = 1, 1
    for n in range(offset or CHUNKS, LIMIT, CHUNKS):
        steps = collatz_steps(n)
        if steps > best_steps:
            best, best_steps = n, steps
    took = time.perf_counter() - started
    print(f"chunk {offset}: longest chain starts at {best} ({best_steps} steps), {took:.2f}s")
    return {"start": best, "steps": best_steps}


def reduce(context: dict[str, Any]) -> dict[str, Any]:
    """The longest chain over every chunk."""
    winner: dict[str, Any] = max(context.values(), key=lambda r: (r["steps"], -r["start"]))
    print(f"longest chain below {LIMIT}: {winner['start']} ({winner['steps']} steps)")
    return winner


_chunks = [
    Phase(f"chunk_{i}", functools.partial(longest_chain, i),
          description=f"longest Collatz chain for n ≡ {i} (mod {CHUNKS})")
    for i in range(CHUNKS)
]

pipeline = Pipeline(
    "cpu_heavy",
    *_chunks,
    Phase("reduce", reduce, depends_on=tuple(p.name for p in _chunks),
          description="pick the longest chain"),
    capture_output=True,
    parallel=True,  # independent phases may run at once (up to -j); none need run alone
)


if __name__ == "__main__":
    result = pipeline.run(executor="thread")
    for phase in result.state.phases:
        print(f"{phase.name:<8} {phase.status:<10} {phase.elapsed:.3f}s {phase.error}")
    result.raise_for_status()
    print(result.results["reduce"])
