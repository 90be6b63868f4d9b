"""The main job: ``python -m report.demo`` (``make demo``).

Runs every step of the project in order — co-simulation, synthesis, system sweeps, accuracy
study, benchmarks — then writes the report ``build/report/index.html``.

* Progress: one line per step when it starts and when it ends, with its time.
* Logs: each step's full output goes to ``build/logs/<step>.log``.
* Failure: the run stops at the failing step with one line naming the step and its log.
* Incremental: a step is skipped when the files it depends on (hashed) and its command are
  unchanged since its last success and its outputs still exist (``--force`` re-runs all).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build"
LOGS = BUILD / "logs"
STAMPS = BUILD / "stamps"
PY = sys.executable


@dataclass(frozen=True)
class Step:
    """One step of the main job.

    ``inputs``: paths (files or folders, relative to the repository) whose contents decide
    whether the step is up to date; ``outputs``: files that must exist after it.
    """

    name: str
    title: str
    command: tuple[str, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    env: dict = field(default_factory=dict)


SOURCES = ("pyproject.toml", "quant")

#: Units the main job re-synthesizes although their committed measurement (synth/measured/)
#: matches, failing if any figure differs: the MX8 building blocks of the SPU and the fp16
#: operators of the baselines (about a minute of Yosys on 2 cores). `make synth-fresh`
#: re-synthesizes every unit.
SYNTH_CHECK = ("lfsr", "mx_mul", "mx_add", "mx_dot", "fpmul_fp16", "fpadd_fp16")

STEPS: tuple[Step, ...] = (
    Step("sim", "co-simulation of every unit on Icarus and Verilator",
         (PY, "-m", "cosim", "--sim", "icarus", "--sim", "verilator", "--mutants"),
         SOURCES + ("hw", "cosim"), ("build/sim/summary.json",)),
    Step("synth", "synthesis: area and timing of every unit (committed measurements where "
         "the Verilog and tools match, the MX units re-synthesized and compared with theirs)",
         (PY, "-m", "synth", "--out", "build/synth", "--check", *SYNTH_CHECK),
         SOURCES + ("hw", "synth"), ("build/synth/area.csv",)),
    Step("sweep", "system model: every figure sweep",
         (PY, "-m", "sysmodel", "sweep", "--figure", "all", "--out", "build/sweep"),
         SOURCES + ("sysmodel",), ("build/sweep/fig12.csv",)),
    Step("study", "accuracy study of the state formats",
         (PY, "-m", "quant.study", "all", "--out", "build/study"),
         SOURCES,  ("build/study",)),
    Step("study-fused", "accuracy study: the fused SPE update against the unfused one",
         (PY, "-m", "quant.study", "fused", "--out", "build/study/fused"),
         SOURCES, ("build/study/fused/summary.csv",)),
    Step("perplexity", "perplexity of the trained Mamba-2 through every state format",
         (PY, "-m", "quant.study", "perplexity-all", "--out", "build/study/perplexity"),
         SOURCES, ("build/study/perplexity/perplexity.csv",)),
    Step("bench", "benchmark of the golden model",
         (PY, "-m", "quant.bench", "--out", "build/bench/quant.json"),
         SOURCES, ("build/bench/quant.json",)),
    Step("bench-sys", "benchmark of the system model sweeps",
         (PY, "-m", "sysmodel.bench", "--out", "build/bench/sysmodel.json"),
         SOURCES + ("sysmodel",), ("build/bench/sysmodel.json",)),
)


def _hash_inputs(step: Step) -> str:
    h = hashlib.sha256()
    h.update(json.dumps(step.command).encode())
    for rel in step.inputs:
        path = ROOT / rel
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for f in files:
            if "__pycache__" in f.parts or not f.exists():
                continue
            h.update(str(f.relative_to(ROOT)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def _up_to_date(step: Step, digest: str) -> bool:
    stamp = STAMPS / f"{step.name}.json"
    if not stamp.exists():
        return False
    try:
        old = json.loads(stamp.read_text())
    except json.JSONDecodeError:
        return False
    return old.get("digest") == digest and all((ROOT / o).exists() for o in step.outputs)


def run_step(step: Step, index: int, total: int, force: bool) -> dict:
    """Run one step; return its record. Raises SystemExit with a one-line message on failure."""
    digest = _hash_inputs(step)
    tag = f"[{index}/{total}] {step.name:6s}"
    log = LOGS / f"{step.name}.log"
    if not force and _up_to_date(step, digest):
        print(f"{tag} up to date, skipped ({step.title})", flush=True)
        return json.loads((STAMPS / f"{step.name}.json").read_text()) | {"skipped": True}
    print(f"{tag} running: {step.title} (log: {log.relative_to(ROOT)})", flush=True)
    t0 = time.perf_counter()
    env = os.environ | step.env | {"PYTHONUNBUFFERED": "1"}
    with open(log, "w") as fh:
        proc = subprocess.run(step.command, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT,
                              env=env, check=False)
    secs = time.perf_counter() - t0
    missing = [o for o in step.outputs if not (ROOT / o).exists()]
    if proc.returncode != 0 or missing:
        why = f"exit status {proc.returncode}" if proc.returncode else f"missing {missing}"
        raise SystemExit(f"make demo: step '{step.name}' failed ({why}) after {secs:.0f} s; "
                         f"see {log.relative_to(ROOT)}")
    rec = {"step": step.name, "digest": digest, "seconds": round(secs, 1),
           "command": " ".join(step.command[1:]), "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
    (STAMPS / f"{step.name}.json").write_text(json.dumps(rec, indent=1))
    print(f"{tag} done in {secs:.0f} s", flush=True)
    return rec | {"skipped": False}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m report.demo", description=__doc__.split("\n")[0])
    ap.add_argument("--force", action="store_true", help="re-run every step")
    ap.add_argument("--only", action="append", choices=[s.name for s in STEPS],
                    help="run only these steps (repeatable), then the report")
    args = ap.parse_args(argv)
    for d in (LOGS, STAMPS):
        d.mkdir(parents=True, exist_ok=True)
    steps = [s for s in STEPS if not args.only or s.name in args.only]
    t0 = time.perf_counter()
    records = []
    try:
        for i, step in enumerate(steps, 1):
            records.append(run_step(step, i, len(steps) + 1, args.force))
    except SystemExit as exc:
        print(exc, file=sys.stderr)
        return 1
    from .build import write_report  # noqa: PLC0415  (imports matplotlib only when needed)

    tag = f"[{len(steps) + 1}/{len(steps) + 1}] report"
    print(f"{tag} running: HTML report (build/report/index.html)", flush=True)
    try:
        out = write_report(records, total_seconds=time.perf_counter() - t0)
    except Exception as exc:  # noqa: BLE001  one line, named step, non-zero exit
        print(f"make demo: step 'report' failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"{tag} done: {out.relative_to(ROOT)}")
    print(f"make demo: finished in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
