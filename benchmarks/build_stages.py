"""Times the default build, process start to report, stage by stage.

Prints each stage's seconds (from the report.json of each run) for a few runs, and the whole
process's wall time next to a baseline measured in the same session: a bare
`import tensorflow` process, which no build can beat. Quote the ratio, not the seconds:
the machines are shared and noisy.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("build_args", nargs="*", help="extra arguments for pipeline.build (after --)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out, rep = Path(tmp) / "model", Path(tmp) / "report"
        command = [sys.executable, "-m", "pipeline.build", "-q", "--out", str(out), "--report-dir", str(rep), *args.build_args]
        baseline, total, stages = [], [], []
        for _ in range(args.runs):
            baseline.append(timed([sys.executable, "-c", "import tensorflow"]))
            total.append(timed(command))
            stages.append(json.loads((rep / "report.json").read_text())["timings"])
    print(f"{'stage':<10}" + "".join(f"{f'run {k + 1}':>9}" for k in range(args.runs)) + f"{'median':>9}")
    for name in stages[0]:
        values = [s[name] for s in stages]
        print(f"{name:<10}" + "".join(f"{v:9.2f}" for v in values) + f"{statistics.median(values):9.2f}")
    print(f"{'process':<10}" + "".join(f"{v:9.2f}" for v in total) + f"{statistics.median(total):9.2f}")
    print(f"{'tf import':<10}" + "".join(f"{v:9.2f}" for v in baseline) + f"{statistics.median(baseline):9.2f}")
    print(f"build / bare tensorflow import: {statistics.median(total) / statistics.median(baseline):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
