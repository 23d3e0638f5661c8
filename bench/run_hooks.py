"""Issue 11: what the run-observing hooks cost a run.

``--phases`` independent no-op phases on ``thread``, three ways, interleaved, each best
of ``--repeats``:

* unobserved: no run observer installed at all (what ``Pipeline.run`` cost before the
  hooks fired for library runs);
* none: no plugin implements a run hook (``Pipeline.run`` looks at the three hooks once);
* start/finish: a plugin implementing ``phasewise_run_start`` and ``phasewise_run_finish``
  that do nothing (called once each per run);
* action: a plugin implementing a do-nothing ``phasewise_action`` (called per action:
  two per phase: started, completed).

Target (issue 11): "none" costs nothing measurable against "unobserved"; a do-nothing
``phasewise_action`` plugin, reported against "none", costs what its calls cost.

    python bench/run_hooks.py [--phases 2000] [--repeats 7]
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from benchutil import best_of, fmt, print_header, table, verdict

import phasewise
from phasewise import Phase, Pipeline
from phasewise.core import services
from phasewise.plugins.manager import plugin_manager

UNOBSERVED = object()


def noop() -> None:
    return None


class StartFinish:
    @phasewise.hookimpl
    def phasewise_run_start(self, pipeline: Any, store: Any, executor: str) -> None:
        pass

    @phasewise.hookimpl
    def phasewise_run_finish(self, pipeline: Any, result: Any, error: Any) -> None:
        pass


class EveryAction:
    def __init__(self) -> None:
        self.seen = 0

    @phasewise.hookimpl
    def phasewise_action(self, pipeline: Any, action: Any, state: Any) -> None:
        self.seen += 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--phases", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args(argv)
    print_header("run_hooks.py — the run hooks on 2,000 no-op phases, thread",
                 argv if argv is not None else sys.argv)

    pipeline = Pipeline("hooks", *(Phase(f"p{i}", noop) for i in range(args.phases)))
    pm = plugin_manager()
    action_plugin = EveryAction()
    plugins: dict[str, Any] = {"unobserved": UNOBSERVED, "none": None,
                               "start/finish": StartFinish(), "action": action_plugin}
    pipeline.run(executor="thread")  # warm: imports, plugin loading, the thread pool

    installed = services._observer  # the plugins' observer, which `import phasewise` set

    def one_run(plugin: Any) -> float | None:
        if plugin is UNOBSERVED:
            services.set_run_observer(lambda pipeline, store, executor: None)
        elif plugin is not None:
            pm.register(plugin)
        try:
            result = pipeline.run(executor="thread")
        finally:
            if plugin is UNOBSERVED:
                services.set_run_observer(installed)
            elif plugin is not None:
                pm.unregister(plugin)
        assert result.ok
        return None

    best = {name: float("inf") for name in plugins}
    order = list(plugins.items())
    for _ in range(args.repeats):  # interleaved, rotated: drift hits each alike
        order = order[1:] + order[:1]
        for name, plugin in order:
            best[name] = min(best[name], best_of(lambda p=plugin: one_run(p), 1))
    assert action_plugin.seen >= 2 * args.phases * args.repeats, action_plugin.seen

    rows = [[name, fmt(best[name]), fmt(best[name] / best["unobserved"]),
             fmt(best[name] / args.phases * 1e6)] for name in plugins]
    print(table(["plugins", "run (s)", "vs unobserved", "µs per phase"], rows))
    none = best["none"] / best["unobserved"]
    action = best["action"] / best["none"]
    print(f"\nno implementing plugin: {fmt(none)}x the unobserved run "
          f"({verdict(none <= 1.05)} against ≤ 1.05x); a do-nothing phasewise_action "
          f"plugin: {fmt(action)}x the run with none")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
