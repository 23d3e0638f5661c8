"""Issue 2: what ``import phasewise`` costs a fresh interpreter.

Each statement runs in a fresh ``python -c`` (``--runs`` times, interleaved, median);
the bare interpreter (``python -c pass``) is subtracted. Reference: importing
cloudpickle, msgspec, pluggy and click together, measured in the same run. Target
(issue 2): ``import phasewise`` adds at most 45 ms (and less than the reference).

Also checks, in a fresh interpreter, that ``import phasewise`` loads no plugin, starts
no thread or process, and pulls in none of the heavy modules (multiprocess, rich, dask,
distributed, click).

    python bench/import_time.py [--runs 15]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from benchutil import fmt, median, print_header, table, verdict

HEAVY = ("multiprocess", "rich", "dask", "distributed", "click", "pluggy", "cloudpickle",
         "msgspec", "numpy", "concurrent.futures", "asyncio", "inspect", "typing")

STATEMENTS = {
    "bare interpreter (pass)": "pass",
    "import phasewise": "import phasewise",
    "from phasewise import Phase, Pipeline": "from phasewise import Phase, Pipeline",
    "reference: import cloudpickle, msgspec, pluggy, click":
        "import cloudpickle, msgspec, pluggy, click",
}

PROBE = r"""
import sys
before = set(sys.modules)
{stmt}
after = set(sys.modules)
import json, os, threading
kids = 0
for tid in os.listdir("/proc/self/task"):
    with open(f"/proc/self/task/{{tid}}/children") as f:
        kids += len(f.read().split())
print(json.dumps({{"modules": sorted(after - before), "threads": threading.active_count(),
                  "children": kids}}))
"""


def probe(stmt: str) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-c", PROBE.format(stmt=stmt)], capture_output=True,
                         text=True, check=True, env=_env())
    return json.loads(out.stdout)


def spawn(code: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=_env())
    return time.perf_counter() - t0


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # nothing written, nothing skewed between runs
    return env


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=15, help="fresh interpreters per statement")
    ap.add_argument("--budget-ms", type=float, default=45.0)
    args = ap.parse_args(argv)

    print_header("import time: fresh interpreters, median, minus a bare interpreter")
    for code in STATEMENTS.values():  # warm the page cache and .pyc files
        spawn(code)
    samples: dict[str, list[float]] = {k: [] for k in STATEMENTS}
    for _ in range(args.runs):
        for label, code in STATEMENTS.items():
            samples[label].append(spawn(code))
    bare = median(samples["bare interpreter (pass)"])
    rows = []
    added: dict[str, float] = {}
    for label, values in samples.items():
        med = median(values)
        added[label] = med - bare
        rows.append([label, fmt(med * 1e3), fmt(min(values) * 1e3),
                     "-" if label.startswith("bare") else fmt(added[label] * 1e3)])
    print(table(["statement", "median ms", "min ms", "added over bare ms"], rows))

    info = probe("import phasewise")
    first_use = probe("from phasewise import Phase, Pipeline")
    loaded = set(info["modules"])
    used = set(first_use["modules"])
    print()
    print("Modules `import phasewise` loads: " + ", ".join(
        sorted(m for m in loaded if not m.startswith("_"))))
    print()
    heavy_rows = [[m, "yes" if m in loaded else "no", "yes" if m in used else "no"]
                  for m in HEAVY]
    manager = "phasewise.plugins.manager"
    heavy_rows.append(["phasewise.plugins.manager (plugin loading)",
                       "yes" if manager in loaded else "no", "yes" if manager in used else "no"])
    heavy_rows.append(["threads / child processes after it", f"{info['threads']} / "
                       f"{info['children']}", f"{first_use['threads']} / {first_use['children']}"])
    heavy_rows.append(["modules loaded in all", str(len(loaded)), str(len(used))])
    print(table(["module", "after `import phasewise`",
                 "after `from phasewise import Phase, Pipeline`"], heavy_rows))

    ours = added["import phasewise"]
    ref = added["reference: import cloudpickle, msgspec, pluggy, click"]
    print()
    forbidden = [m for m in ("multiprocess", "rich", "dask", "distributed", "click")
                 if m in loaded]
    print(table(["check", "measured", "target", "verdict"], [
        ["`import phasewise` adds", f"{fmt(ours * 1e3)} ms", f"<= {args.budget_ms:g} ms",
         verdict(ours * 1e3 <= args.budget_ms)],
        ["… vs reference imports", f"{fmt(ours / ref if ref > 0 else float('nan'))}x",
         "<= 1x", verdict(ours <= ref)],
        ["`from phasewise import Phase, Pipeline` adds",
         f"{fmt(added['from phasewise import Phase, Pipeline'] * 1e3)} ms", "(info)", "-"],
        ["heavy modules at import", ", ".join(forbidden) or "none", "none",
         verdict(not forbidden)],
        ["plugin loading / threads / processes at import",
         f"manager {'loaded' if manager in loaded else 'not loaded'}, "
         f"{info['threads']} thread(s), {info['children']} child(ren)", "none, 1, 0",
         verdict(manager not in loaded and info["threads"] == 1 and info["children"] == 0)],
    ]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
