"""`make bench`: run every bench script, collect their figures, write bench/results/latest.{json,md}.

Each bench/*.py (but common.py, run.py and __init__.py) runs in its own process, bounded by
BENCH_TIMEOUT_S (default 1200 s), and reports figures as bench/common.py describes. A script that
fails or times out is recorded as such and the others still run. The Markdown table (with the
machine's description) also replaces the README's performance section, between its markers.

Run: .venv/bin/python bench/run.py [script.py …]   (default: every script)
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import FIGURE_PREFIX  # noqa: E402

RESULTS = ROOT / "bench" / "results"
NOT_SCRIPTS = {"common.py", "run.py", "__init__.py"}
README_BEGIN, README_END = "<!-- bench:begin -->", "<!-- bench:end -->"


def scripts(names: list[str]) -> list[Path]:
    found = sorted(p for p in (ROOT / "bench").glob("*.py") if p.name not in NOT_SCRIPTS)
    return [p for p in found if not names or p.name in names or p.stem in names]


def machine() -> dict:
    """What the figures were measured on (the machine is shared: the load average is part of it)."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "?")
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(mem_kb / 1024 / 1024, 1),
            "kernel": platform.release(), "python": platform.python_version(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
            "reference_loop_ms": reference_loop_ms()}


def reference_loop_ms() -> float:
    """A fixed pure-Python loop, median of 7 runs: how fast this (virtual) machine is today, so figures
    from two runs can be compared (the same code measured ~1.5x slower on a slower day of the host)."""
    import statistics
    import time

    runs = []
    for _ in range(7):
        started = time.perf_counter()
        total = 0
        for i in range(2_000_000):
            total += i
        runs.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(runs), 1)


def run_script(path: Path, timeout: float) -> dict:
    """Run one script, echoing its output; its figures, exit code and duration."""
    print(f"== {path.name}", flush=True)
    began = time.monotonic()
    figures, lines = [], []
    process = subprocess.Popen([sys.executable, str(path)], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = began + timeout
        for line in process.stdout:
            if line.startswith(FIGURE_PREFIX):
                figures.append({"script": path.name, **json.loads(line[len(FIGURE_PREFIX):])})
            else:
                print(line, end="", flush=True)
                lines.append(line)
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(path.name, timeout)
        code = process.wait(max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        process.wait()
        code = "timeout"
    seconds = round(time.monotonic() - began, 1)
    if code != 0:
        figures.append({"script": path.name, "figure": f"{path.stem} did not complete ({code})", "value": None,
                        "unit": "", "target": "completes", "met": False})
    return {"returncode": code, "seconds": seconds, "figures": figures}


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [f"Measured {result['generated_at'][:16].replace('T', ' ')} UTC on {m['cores']} × {m['cpu']}, "
             f"{m['memory_gb']} GB RAM, Linux {m['kernel']}, Python {m['python']} (shared machine; load average "
             f"at start {', '.join(map(str, m['load_average_at_start']))}; reference Python loop "
             f"{m.get('reference_loop_ms', '?')} ms, lower is faster). `make bench` rewrites this table.", "",
             "| bench | figure | value | target | met |", "|---|---|---|---|---|"]
    for f in result["figures"]:
        value = "—" if f["value"] is None else f"{f['value']:,}" if isinstance(f["value"], int) else f"{f['value']:,.1f}" \
            if abs(f["value"]) >= 10 else f"{f['value']:.3g}"
        met = "" if f["met"] is None else "yes" if f["met"] else "**no**"
        lines.append(f"| {f['script'].removesuffix('.py')} | {f['figure']} | {value} {f['unit']} | "
                     f"{f['target'] or ''} | {met} |")
    return "\n".join(lines) + "\n"


def update_readme(table: str) -> None:
    readme = ROOT / "README.md"
    text = readme.read_text()
    if README_BEGIN in text and README_END in text:
        head, rest = text.split(README_BEGIN, 1)
        readme.write_text(f"{head}{README_BEGIN}\n{table}{README_END}{rest.split(README_END, 1)[1]}")


def main(argv: list[str]) -> int:
    timeout = float(os.environ.get("BENCH_TIMEOUT_S", "1200"))
    result = {"generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(),
              "scripts": {}, "figures": []}
    selected = scripts(argv)
    for path in selected:
        ran = run_script(path, timeout)
        result["figures"] += ran.pop("figures")
        result["scripts"][path.name] = ran
    if argv:  # a partial run keeps the other scripts' last figures
        previous = json.loads((RESULTS / "latest.json").read_text()) if (RESULTS / "latest.json").exists() else {}
        names = {p.name for p in selected}
        kept = [f for f in previous.get("figures", []) if f["script"] not in names]
        result["figures"] = kept + result["figures"]
        result["scripts"] = {**{k: v for k, v in previous.get("scripts", {}).items() if k not in names},
                             **result["scripts"]}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    table = markdown(result)
    (RESULTS / "latest.md").write_text(table)
    update_readme(table)
    print("\n" + table)
    missed = [f["figure"] for f in result["figures"] if f["met"] is False]
    print(f"{len(result['figures'])} figures, {len(missed)} targets missed" + (f": {'; '.join(missed)}" if missed else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
