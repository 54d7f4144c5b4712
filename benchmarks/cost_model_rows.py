"""The quickstart sweep rows of ``benchmarks/perf.py`` (toolkit, full budget and peak stop), timed
with ``perf_sweep.toolkit_sweep``, for RESULTS-cost-model.md. Run from a checkout's root:
``PYTHONPATH=src python benchmarks/cost_model_rows.py LABEL``; prints one line per row and
appends each row with every run's summary to ``LABEL.jsonl`` (to compare two versions' results).
"""

import json
import subprocess
import sys

sys.path.insert(0, "benchmarks")
import perf_sweep as pw  # noqa: E402


def main(label: str) -> None:
    head = ["git", "rev-parse", "--short", "HEAD"]
    commit = subprocess.run(head, capture_output=True, text=True).stdout.strip()
    runs = pw.quickstart_runs()
    stop = next((c.peak_stop for c in runs if c.peak_stop), 3.0)
    for name, factor in (("full budget", None), ("peak stop", stop)):
        r = pw.toolkit_sweep(pw.with_peak_stop(runs, factor), f"quickstart-{name}")
        row = {
            "version": label,
            "commit": commit,
            "row": f"quickstart: toolkit, {name}",
            "wall_s": round(r.wall_s, 1),
            "load": [round(x, 2) for x in r.load],
            "widths": sorted(r.probe.widths),
            "alone_steps": r.probe.alone_steps,
            "results": {repr(k): v for k, v in sorted(r.results.items())},
        }
        with open(f"{label}.jsonl", "a") as f:
            f.write(json.dumps(row, default=str) + "\n")
        print(label, commit, row["row"], row["wall_s"], "s, load", row["load"], flush=True)
        print("  widths", row["widths"], "steps one run at a time", row["alone_steps"], flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
