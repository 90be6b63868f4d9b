"""What one simulated cycle costs a cocotb bench, apart from the unit's own logic:
``python -m cosim.probe [--unit U] [--sim S ...] [--repetitions N] [--out F]``.

Runs :mod:`cosim.tb_probe` on an MX unit (default ``mx_add``) and writes, per simulator, the
microseconds of one ``await FallingEdge``, of a wide and a one-bit port write and read, and
of a wide write followed by an await (``build/bench/cosim_probe.json`` by default). The
stream benches' cycles/s (``build/bench/cosim.json``) are bounded by these figures.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path

from .runner import BUILD_ROOT, SIMULATORS, one_line_parser, run_cosim, vectors_arg

MX_UNITS = ("mx_mul", "mx_mul_scalar", "mx_add")


def main(argv: list[str] | None = None) -> int:
    parser = one_line_parser(prog="python -m cosim.probe", description=__doc__.splitlines()[0])
    parser.add_argument("--unit", choices=MX_UNITS, default="mx_add",
                        help="the unit simulated under the probe (default mx_add)")
    parser.add_argument("--sim", action="append", choices=SIMULATORS,
                        help="simulator (repeatable; default verilator)")
    parser.add_argument("--repetitions", type=vectors_arg, default=50_000,
                        help="repetitions of each operation (an integer >= 1; default 50000)")
    parser.add_argument("--out", type=Path, default=BUILD_ROOT / "bench" / "cosim_probe.json")
    args = parser.parse_args(argv)
    data = {"command": "python -m cosim.probe " + " ".join(sys.argv[1:] if argv is None
                                                             else argv),
            "unit": args.unit, "host_cpus": os.cpu_count(), "host": platform.node(),
            "loadavg_1min": round(os.getloadavg()[0], 2), "simulators": {}}
    for sim in dict.fromkeys(args.sim or ["verilator"]):
        r = run_cosim(args.unit, "cosim.tb_probe", name=f"probe_{args.unit}", sim=sim,
                      vectors=args.repetitions, record=False)
        data["simulators"][sim] = {k: v for k, v in r.benches["probe"].items()
                                   if k not in ("vectors", "mismatches")}
        print(f"{sim}: {data['simulators'][sim]}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    tmp.replace(args.out)
    print(f"cosim.probe: figures in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
