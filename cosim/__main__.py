"""Run the co-simulation regression: ``python -m cosim [--sim S ...] [--long] [--tb NAME ...]``.

Each testbench of :data:`cosim.benches.TESTBENCHES` runs on each simulator with its golden
model (a record in ``build/sim/summary.json`` each) and, with ``--mutants``, once with every
mutant, which must fail. With ``--long``, testbenches marked ``bulk`` run in the bulk mode
(:mod:`cosim.bulk`). The operand-class coverage tables of the runs go to
``build/sim/coverage.{json,md}``. Exit status 1 if any run went the wrong way.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from .benches import TESTBENCHES
from .bulk import run_bulk
from .coverage import write_report
from .runner import BUILD_ROOT, SIMULATORS, CosimFailure, check_vectors, default_sim, run_cosim
from .summary import read_summary
from .runner import _seed as seed_knob


def env_int(name: str, default: int) -> int:
    """A vector count from the environment: an integer >= 1, ``default`` when unset."""
    raw = os.environ.get(name, "").strip()
    return check_vectors(raw, name) if raw else default


def _vectors_arg(text: str) -> int:
    try:
        return check_vectors(text, "--vectors")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line naming the option, exit 2
        sys.stderr.write(f"python -m cosim: error: {message}\n")
        sys.exit(2)


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m cosim", description=__doc__.splitlines()[0])
    parser.add_argument("--sim", action="append", choices=SIMULATORS,
                        help="simulator (repeatable; default: $SIM, else icarus)")
    parser.add_argument("--tb", action="append", choices=sorted(TESTBENCHES),
                        help="testbench (repeatable; default: all)")
    parser.add_argument("--long", action="store_true",
                        help="long regression: each testbench's long_vectors")
    parser.add_argument("--vectors", type=_vectors_arg,
                        help="override the number of vectors (an integer >= 1)")
    parser.add_argument("--seed", type=int, help="COCOTB_RANDOM_SEED (default: $COCOTB_RANDOM_"
                        "SEED, else random)")
    parser.add_argument("--mutants", action="store_true",
                        help="also check that every mutant reference model fails")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    try:  # the environment knobs, checked before anything runs
        sims = args.sim or [default_sim()]
        env_vectors = env_int("COSIM_VECTORS", 0)
        if args.seed is None and os.environ.get("COCOTB_RANDOM_SEED", "").strip():
            seed_knob(None)
    except ValueError as exc:
        print(f"python -m cosim: error: {exc}", file=sys.stderr)
        return 2
    failures = []
    for tb in (TESTBENCHES[n] for n in (args.tb or sorted(TESTBENCHES))):
        vectors = args.vectors if args.vectors is not None else (
            tb.long_vectors if args.long else env_vectors or tb.vectors)
        name = f"{tb.name}_long" if args.long else tb.name  # both kinds kept in the summary
        for sim in sims:
            try:
                if args.long and tb.bulk:
                    r = run_bulk(tb.unit, name=name, sim=sim, seed=args.seed, vectors=vectors)
                else:
                    r = run_cosim(tb.unit, tb.module, name=name, sim=sim, seed=args.seed,
                                  vectors=vectors)
                print(f"PASS {name}_{sim}: {r.vectors} vectors, {r.mismatches} mismatches, "
                      f"{r.cycles_per_s} cycles/s, seed {r.seed}, build {r.build_s:.1f} s, "
                      f"run {r.run_s:.1f} s", flush=True)
            except CosimFailure as exc:
                failures.append(f"{name}_{sim}")
                print(f"FAIL {exc}")
            if not args.mutants:
                continue
            for mutant in tb.mutants:
                r = run_cosim(tb.unit, tb.module, name=tb.name, sim=sim, seed=args.seed,
                              vectors=min(vectors, 500), mutant=mutant, check=False)
                ok = not r.passed and r.mismatches > 0
                print(f"{'PASS' if ok else 'FAIL'} {tb.name}_{sim} mutant {mutant}: "
                      f"{r.mismatches} mismatches (must be > 0)")
                if not ok:
                    failures.append(f"{tb.name}_{sim}:{mutant}")
    write_report(read_summary(BUILD_ROOT / "sim" / "summary.json"), BUILD_ROOT / "sim")
    if failures:
        print(f"{len(failures)} failing: {', '.join(failures)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
