"""Run the co-simulation regression: ``python -m cosim [--sim S ...] [--long] [--tb NAME ...]``.

Each testbench of :data:`cosim.benches.TESTBENCHES` runs on each simulator with its golden
model (a record in ``build/sim/summary.json`` each) and, with ``--mutants``, once with every
mutant, which must fail. Exit status 1 if any run went the wrong way.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from .benches import TESTBENCHES
from .runner import SIMULATORS, CosimFailure, default_sim, run_cosim


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw, 0) if raw else default


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cosim", description=__doc__.splitlines()[0])
    parser.add_argument("--sim", action="append", choices=SIMULATORS,
                        help="simulator (repeatable; default: $SIM, else icarus)")
    parser.add_argument("--tb", action="append", choices=sorted(TESTBENCHES),
                        help="testbench (repeatable; default: all)")
    parser.add_argument("--long", action="store_true",
                        help="long regression: each testbench's long_vectors")
    parser.add_argument("--vectors", type=int, help="override the number of vectors")
    parser.add_argument("--seed", type=int, help="COCOTB_RANDOM_SEED (default: $COCOTB_RANDOM_"
                        "SEED, else random)")
    parser.add_argument("--mutants", action="store_true",
                        help="also check that every mutant reference model fails")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    sims = args.sim or [default_sim()]
    failures = []
    for tb in (TESTBENCHES[n] for n in (args.tb or sorted(TESTBENCHES))):
        vectors = args.vectors or (tb.long_vectors if args.long else
                                   env_int("COSIM_VECTORS", tb.vectors))
        name = f"{tb.name}_long" if args.long else tb.name  # both kinds kept in the summary
        for sim in sims:
            try:
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
    if failures:
        print(f"{len(failures)} failing: {', '.join(failures)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
