"""Wall time of `make test` (the whole suite, real servers and processes, as CI runs it); prints figures and exits.

Run: .venv/bin/python bench/suite.py [--timeout 3000]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import Figure, report  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=3000)
    args = parser.parse_args(argv)
    began = time.monotonic()
    out = subprocess.run(["make", "test"], cwd=ROOT, capture_output=True, text=True, timeout=args.timeout)
    wall = time.monotonic() - began
    summary = next((line for line in reversed(out.stdout.splitlines()) if " in " in line and "passed" in line), "")
    failed = [line for line in out.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
    if failed:  # what went wrong, not just where: the error lines of each failure, and the whole log
        log = Path(tempfile.gettempdir()) / "widip-bench-suite.log"
        log.write_text(out.stdout + out.stderr)
        print("\n".join([line for line in out.stdout.splitlines() if line.startswith("E ")][:60]))
        print(f"full output: {log}")
    print("\n".join(failed))
    print(summary or out.stdout[-2000:])
    counts = {kind: int(n) for n, kind in re.findall(r"(\d+) (passed|failed|error|errors)", summary)}
    report([Figure("make test wall time", wall, "s", "<=", 600),
            Figure("make test failures", counts.get("failed", 0) + counts.get("error", 0) + counts.get("errors", 0),
                   "tests", "<=", 0),
            Figure("make test passed", counts.get("passed", 0), "tests")])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
