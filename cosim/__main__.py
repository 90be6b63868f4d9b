"""Run the co-simulation regression: ``python -m cosim [--sim S ...] [--long] [--tb NAME ...]``.

Each testbench of :data:`cosim.benches.TESTBENCHES` runs on each simulator with its golden
model (a record in ``build/sim/summary.json`` each). With ``--mutants`` every mutant must
fail: the reference mutants are checked offline against the recorded responses of a
testbench's golden runs, shortest first, until one exposes the mutant
(:func:`cosim.replay.check_reference_mutant`); a mutant that
changes a reactive bench's stimulus, and the RTL mutants (:mod:`cosim.mutants`), are
simulated. Jobs run in parallel through the project's executor (``--jobs``,
``--executor``): one job per unit and simulator (its build, then its runs), then the offline
checks. The figures of the run (vectors, cycles, wall time, cycles/s per bench and
simulator, and the total wall time) go to ``build/bench/cosim.json``.
With ``--long``, testbenches marked ``bulk`` run in the bulk mode (:mod:`cosim.bulk`).
The operand-class coverage tables of the runs go to ``build/sim/coverage.{json,md}``.
Exit status 1 if any run went the wrong way, 2 on a bad option.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import secrets
import sys
import time
from pathlib import Path

from executor import add_executor_args, executor_from_args

from .benches import TESTBENCHES
from .coverage import write_report
from .runner import (BUILD_ROOT, SIMULATORS, check_vectors, default_sim, one_line_parser,
                     sim_root, vectors_arg)
from .summary import read_summary
from .runner import _seed as seed_knob

_log = logging.getLogger("cosim")

#: Vectors of a simulated (not offline) reference-mutant run.
MUTANT_VECTORS = 500


def env_int(name: str, default: int) -> int:
    """A vector count from the environment: an integer >= 1, ``default`` when unset."""
    raw = os.environ.get(name, "").strip()
    return check_vectors(raw, name) if raw else default


# ------------------------------------------------------------------------------ jobs (pure)

def build_job(item: tuple[str, str], plain: bool = True) -> dict:
    """Build (or find cached) unit ``item[0]`` for simulator ``item[1]``; with ``plain``
    false only export it (its runs build their own toplevels, see :func:`_own_toplevel`)."""
    from .runner import CosimFailure, build_unit

    unit, sim = item
    if unit in _rtl_mutants():
        from . import mutants  # noqa: F401  (registers the RTL mutants)
    from hw.export import export_cached

    try:
        # the Verilog first, timed on its own (Amaranth's elaboration and netlist: ~1-4 s per
        # unit, ~17 s per SPU wrapper; 0 when cached), then the simulator build
        t0 = time.perf_counter()
        export_cached(unit, BUILD_ROOT / "verilog")
        export_s = time.perf_counter() - t0
        build_dir, build_s = None, 0.0
        if plain:
            _, build_dir, build_s = build_unit(unit, sim)
    except CosimFailure as exc:
        return {"unit": unit, "sim": sim, "ok": False, "error": str(exc)}
    return {"unit": unit, "sim": sim, "ok": True, "build_s": round(build_s, 2),
            "export_s": round(export_s, 2), "build_dir": build_dir and str(build_dir)}


def _own_toplevel(job: dict) -> bool:
    """The job's run builds its own toplevel around the unit: the bulk wrapper (``--long``) or
    a stream bench's window wrapper (``COSIM_WINDOW`` > 1 on the job's simulator)."""
    from .stream import stream_window

    return bool(job.get("bulk")) or stream_window(job["module"], job["sim"]) > 1


def run_job(job: dict) -> dict:
    """One simulation: a golden run (must pass) or a simulated mutant run (must fail)."""
    from .runner import CosimFailure, run_cosim

    if job.get("rtl"):
        from . import mutants  # noqa: F401  (registers the RTL mutants)
    t0 = time.perf_counter()
    out = dict(job)
    try:
        if job.get("bulk"):  # the long regression of a bulk testbench (cosim.bulk)
            from .bulk import run_bulk

            r = run_bulk(job["unit"], name=job["name"], sim=job["sim"], seed=job["seed"],
                         vectors=job["vectors"])
        else:
            r = run_cosim(job["unit"], job["module"], name=job["name"], sim=job["sim"],
                          seed=job["seed"], vectors=job["vectors"], mutant=job.get("mutant"),
                          testcase=job.get("testcase"),
                          check=job["expect_pass"], record=job["expect_pass"])
    except CosimFailure as exc:
        out.update(ok=False, error=str(exc), passed=False, wall_s=time.perf_counter() - t0)
        r = exc.result
        if r is None:
            return out
    else:
        out["ok"] = r.passed if job["expect_pass"] else (not r.passed and r.mismatches > 0)
    out.update(passed=r.passed, vectors=r.vectors, mismatches=r.mismatches, cycles=r.cycles,
               cycles_per_s=r.cycles_per_s, build_s=round(r.build_s, 2),
               run_s=round(r.run_s, 2), seed=r.seed, wall_s=round(time.perf_counter() - t0, 2),
               trace=str(r.trace) if r.trace else None,
               sim_wall_s=round(sum(b.get("wall_s", 0.0) for b in r.benches.values()), 3),
               plan_s=round(sum(b.get("plan_s", 0.0) for b in r.benches.values()), 3),
               window=max((b.get("window", 1) for b in r.benches.values()), default=None))
    return out


def unit_job(item: tuple[tuple[str, str], list[dict]]) -> tuple[dict, list[dict]]:
    """Build unit ``item[0]`` = ``(unit, sim)`` (or find it cached), then run its simulations
    ``item[1]`` in this worker: one job per build, so that a worker goes on to the next unit
    as soon as it is done, without waiting for every other build (no phase barrier)."""
    plain = not all(_own_toplevel(j) for j in item[1])
    built = build_job(item[0], plain)
    runs = [run_job(j) for j in item[1]] if built["ok"] else []
    if not plain:  # the wrapper builds, timed by the runs
        built["build_s"] = round(sum(r.get("build_s") or 0.0 for r in runs), 2)
    return built, runs


def _heaviest_first(groups: dict) -> list:
    """The units' jobs, those with the most simulations first (the SPU and baseline benches,
    which are also the largest builds), so the long ones do not end up alone at the tail."""
    return sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))


def offline_job(item: tuple[list[tuple[str, str]], str]) -> dict:
    """Check reference mutant ``item[1]`` against the traces ``item[0]`` (``(run, trace)``
    pairs of one testbench's golden runs, shortest first): it is caught by the first trace
    whose responses disagree with its expectations; it survives if none does."""
    from .replay import Diverged, check_reference_mutant

    traces, mutant = item
    t0 = time.perf_counter()
    out: dict = {}
    for run, trace in traces:
        try:
            mism, vec = check_reference_mutant(trace, mutant)
        except Diverged as exc:  # the mutant changes the stimulus: it must be simulated
            return {"run": run, "mutant": mutant, "ok": False, "diverged": str(exc)}
        except (ValueError, OSError, KeyError) as exc:
            return {"run": run, "mutant": mutant, "ok": False, "error": str(exc)}
        out = {"run": run, "mutant": mutant, "ok": mism > 0, "mismatches": mism,
               "vectors": vec, "wall_s": round(time.perf_counter() - t0, 2)}
        if mism:
            break
    return out


def _traces_per_bench(runs: list[dict]) -> dict[str, list[dict]]:
    """The golden runs with a trace, per testbench, shortest first. A reference mutant is a
    wrong expectation, and the scoreboard that must catch it is the same on every simulator:
    it is checked against the shortest run (the Icarus smoke run when Icarus is in the run)
    and, only if that one's stimulus does not expose it, against the next. Every bit of every
    run is still checked against the golden model."""
    per: dict[str, list[dict]] = {}
    for r in runs:
        if r["expect_pass"] and r.get("trace"):
            per.setdefault(r["tb"], []).append(r)
    return {tb: sorted(rs, key=lambda r: (r["vectors"], r["sim"]))
            for tb, rs in sorted(per.items())}


def _rtl_mutants() -> dict:
    from .mutants import RTL_MUTANTS

    return RTL_MUTANTS


# --------------------------------------------------------------------------------- driver

def _plan(args, sims, env_vectors, seed) -> list[dict]:
    jobs = []
    for tb in (TESTBENCHES[n] for n in (args.tb or sorted(TESTBENCHES))):
        name = f"{tb.name}_long" if args.long else tb.name  # both kinds kept in the summary
        for sim in sims:
            vectors = args.vectors if args.vectors is not None else (
                tb.long_vectors if args.long else env_vectors or tb.default_vectors(sim))
            jobs.append({"name": name, "tb": tb.name, "unit": tb.unit, "module": tb.module,
                         "testcase": tb.testcase, "sim": sim, "seed": seed, "vectors": vectors,
                         "bulk": args.long and tb.bulk, "expect_pass": True})
        if args.mutants:
            jobs += [_mutant_job(tb, mutant, sims, seed, vectors) for mutant in tb.mutants
                     if not tb.offline or mutant in tb.simulated]
    if args.mutants and not args.tb:
        sim = "verilator" if "verilator" in sims else sims[0]
        for unit, (module, _) in sorted(_rtl_mutants().items()):
            jobs.append({"name": unit, "tb": unit, "unit": unit, "module": module, "sim": sim,
                         "seed": seed, "vectors": MUTANT_VECTORS, "rtl": True,
                         "expect_pass": False})
    return jobs


def _mutant_job(tb, mutant: str, sims: list[str], seed: int, vectors: int) -> dict:
    """A simulated reference-mutant run (must fail): a wrong expectation, one simulator is
    enough (Verilator when it is in the run)."""
    sim = "verilator" if "verilator" in sims else sims[0]
    return {"name": tb.name, "tb": tb.name, "unit": tb.unit, "module": tb.module,
            "testcase": tb.testcase, "sim": sim, "seed": seed,
            "vectors": min(vectors, MUTANT_VECTORS), "mutant": mutant, "expect_pass": False}


def main(argv: list[str] | None = None) -> int:
    parser = one_line_parser(prog="python -m cosim", description=__doc__.splitlines()[0])
    parser.add_argument("--sim", action="append", choices=SIMULATORS,
                        help="simulator (repeatable; default: $SIM, else icarus)")
    parser.add_argument("--tb", action="append", choices=sorted(TESTBENCHES),
                        help="testbench (repeatable; default: all)")
    parser.add_argument("--long", action="store_true",
                        help="long regression: each testbench's long_vectors")
    parser.add_argument("--vectors", type=vectors_arg,
                        help="override the number of vectors (an integer >= 1)")
    parser.add_argument("--seed", type=int, help="COCOTB_RANDOM_SEED (default: $COCOTB_RANDOM_"
                        "SEED, else a fresh one, logged)")
    parser.add_argument("--mutants", action="store_true",
                        help="also check that every mutant (reference and RTL) fails")
    parser.add_argument("--bench-out", type=Path, default=BUILD_ROOT / "bench" / "cosim.json",
                        help="figures of the run (default: build/bench/cosim.json)")
    add_executor_args(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    try:  # the environment knobs, checked before anything runs
        sims = list(dict.fromkeys(args.sim or [default_sim()]))
        env_vectors = env_int("COSIM_VECTORS", 0)
        from .stream import idle_knob, window_knob

        for sim in sims:
            window_knob(sim)
        idle_knob()
        seed = args.seed
        if seed is None:
            seed = (seed_knob(None) if os.environ.get("COCOTB_RANDOM_SEED", "").strip()
                    else secrets.randbits(31))
    except ValueError as exc:
        print(f"python -m cosim: error: {exc}", file=sys.stderr)
        return 2
    print(f"cosim: seed {seed} (replay with --seed {seed})", flush=True)
    t0 = time.perf_counter()
    jobs = _plan(args, sims, env_vectors, seed)
    # one job per unit and simulator: its build, then its runs; a bulk run builds its own
    # wrapper around the unit (cosim.bulk), so it is a job by itself
    groups: dict = {}
    for j in jobs:
        if not j.get("bulk"):
            groups.setdefault((j["unit"], j["sim"]), []).append(j)
    failures: list[str] = []
    with executor_from_args(args) as ex:
        done = ex.map(unit_job, _heaviest_first(groups))
        built = [b for b, _ in done]
        runs = [r for _, rs in done for r in rs]
        for b in built:
            if not b["ok"]:
                print(f"FAIL build {b['unit']} on {b['sim']}: {b['error']}", flush=True)
                failures.append(f"build {b['unit']}_{b['sim']}")
        runs += ex.map(run_job, [j for j in jobs if j.get("bulk")])
        units_wall = time.perf_counter() - t0
        offline = [([(f"{r['name']}_{r['sim']}", r["trace"]) for r in rs], m)
                   for tb, rs in _traces_per_bench(runs).items()
                   for m in TESTBENCHES[tb].mutants
                   if TESTBENCHES[tb].offline and m not in TESTBENCHES[tb].simulated]
        checks = ex.map(offline_job, offline)
        # a reactive bench whose stimulus depends on the mutant's expectations cannot be
        # replayed: that mutant is simulated (once per testbench, on one simulator)
        redo = []
        for c, (traces, mutant) in zip(checks, offline):
            if c.get("diverged"):
                r = next(r for r in runs if f"{r['name']}_{r['sim']}" == c["run"])
                redo.append(_mutant_job(TESTBENCHES[r["tb"]], mutant, sims, seed,
                                        r["vectors"]))
        runs += ex.map(run_job, redo)
    for r in runs:
        label = f"{r['name']}_{r['sim']}" + (f" mutant {r['mutant']}" if r.get("mutant") else
                                             " (RTL mutant)" if r.get("rtl") else "")
        if r["expect_pass"]:
            if r["ok"]:
                print(f"PASS {label}: {r['vectors']} vectors, {r['mismatches']} mismatches, "
                      f"{r['cycles_per_s']} cycles/s, seed {r['seed']}, build "
                      f"{r['build_s']:.1f} s, run {r['run_s']:.1f} s")
            else:
                print(f"FAIL {r.get('error') or label}")
        else:
            print(f"{'PASS' if r['ok'] else 'FAIL'} {label}: {r.get('mismatches')} mismatches "
                  "(must be > 0)")
        if not r["ok"]:
            failures.append(label)
        elif (r["expect_pass"] and args.mutants and TESTBENCHES[r["tb"]].offline
              and TESTBENCHES[r["tb"]].mutants and not r.get("trace")):
            print(f"FAIL {label}: no trace recorded, its reference mutants are unchecked")
            failures.append(f"{label} (no trace)")
    for c in checks:
        if c.get("diverged"):
            print(f"---- {c['run']} mutant {c['mutant']}: not replayable ({c['diverged']}), "
                  "simulated instead")
            continue
        msg = c.get("error") or f"{c['mismatches']} mismatches in {c['vectors']} vectors"
        print(f"{'PASS' if c['ok'] else 'FAIL'} {c['run']} mutant {c['mutant']} (offline): "
              f"{msg} (must be > 0)")
        if not c["ok"]:
            failures.append(f"{c['run']}:{c['mutant']}")
    total = time.perf_counter() - t0
    _write_bench(args, sims, seed, built, runs, checks, units_wall, total)
    print(f"cosim: {len(runs)} simulations, {len(checks)} offline mutant checks, "
          f"{total:.1f} s wall ({args.executor}, {getattr(ex, 'jobs', '?')} jobs)")
    write_report(read_summary(sim_root() / "summary.json"), sim_root())
    if failures:
        print(f"{len(failures)} failing: {', '.join(failures)}")
        return 1
    return 0


def _write_bench(args, sims, seed, built, runs, checks, units_wall, total) -> None:
    """``build/bench/cosim.json``: the figures of this run, for the lead to re-measure."""
    from executor import default_jobs

    benches = {}
    for r in runs:
        if not r["expect_pass"]:
            continue
        benches[f"{r['name']}_{r['sim']}"] = {
            k: r.get(k) for k in ("tb", "sim", "vectors", "cycles", "cycles_per_s", "window",
                                  "sim_wall_s", "plan_s", "run_s", "build_s", "wall_s",
                                  "passed")}
    data = {
        "command": "python -m cosim " + " ".join(sys.argv[1:] if args is not None else []),
        "seed": seed, "simulators": sims, "executor": args.executor,
        "jobs": args.jobs or default_jobs(), "host_cpus": os.cpu_count(),
        "host": platform.node(), "total_wall_s": round(total, 2),
        # builds and their runs share the workers: the time until every unit was built and
        # simulated (the offline mutant checks and the simulated mutants follow)
        "build_and_run_wall_s": round(units_wall, 2),
        "builds": {f"{b['unit']}_{b['sim']}": b.get("build_s") for b in built},
        # the Verilog export each job waited for (the job of the unit's other simulator
        # finds it cached, or waits on the first one's lock)
        "exports": {f"{b['unit']}_{b['sim']}": b.get("export_s") for b in built},
        "benches": benches,
        "simulated_mutants": {f"{r['name']}_{r['sim']}:{r.get('mutant') or 'rtl'}":
                              {"mismatches": r.get("mismatches"), "wall_s": r.get("wall_s")}
                              for r in runs if not r["expect_pass"]},
        "offline_mutants": {f"{c['run']}:{c['mutant']}": {"mismatches": c.get("mismatches"),
                                                          "wall_s": c.get("wall_s")}
                            for c in checks if not c.get("diverged")},
    }
    out = args.bench_out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    tmp.replace(out)
    print(f"cosim: figures in {out}")


if __name__ == "__main__":
    sys.exit(main())
