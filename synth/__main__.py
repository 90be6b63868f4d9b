"""Command line of the synthesis flow: ``python -m synth [--units ...] [--liberty PATH]``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from executor import ExecutorError, add_executor_args, executor_from_args
from synth.config import ConfigError, load_config, load_units
from synth.flow import FlowError, default_liberty, log, parse_liberty, run_flow
from synth.tables import (make_rows, write_breakdown, write_csv, write_markdown, write_plot,
                          write_timing)
from synth.timing import abc_delay_ps, load_timing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m synth",
        description="Synthesize the hardware units; write area.csv, area.md and area.png.")
    parser.add_argument("--units", nargs="+", metavar="NAME",
                        help="units to synthesize (default: every registered unit of "
                             "synth/units.yaml)")
    parser.add_argument("--liberty", type=Path, metavar="PATH",
                        help="Liberty file (default: OSU 0.18 um from hw.tools.liberty_path)")
    parser.add_argument("--node-nm", type=int, metavar="NM",
                        help="feature size of the --liberty library, for the 10 nm scaling "
                             "(a node of area_scale_to_target in synth/config.yaml)")
    parser.add_argument("--out", type=Path, default=Path("build/synth"),
                        help="output folder (default: build/synth)")
    parser.add_argument("--measured", choices=("use", "ignore"), default="use",
                        help="committed measurements (synth/measured/, keyed by Verilog, "
                             "scripts, Liberty and tool versions): use a matching one instead "
                             "of synthesizing (default), or ignore them")
    parser.add_argument("--check", nargs="+", metavar="NAME", default=(),
                        help="re-synthesize these units although a committed measurement "
                             "matches, and fail if any figure differs from it")
    parser.add_argument("--record", action="store_true",
                        help="write the results of the units synthesized in this run into "
                             "synth/measured/ (with their provenance)")
    add_executor_args(parser)   # --executor local|ray, --address, --jobs (units in parallel)
    args = parser.parse_args(argv)
    try:
        t0 = time.monotonic()
        cfg = load_config()
        known = ", ".join(str(n) for n in sorted(cfg.area_scale_to_target, reverse=True))
        if args.node_nm is not None and cfg.scale_factor(args.node_nm) is None:
            raise FlowError(f"--node-nm {args.node_nm}: no area scaling factor for that node "
                            f"in synth/config.yaml (allowed: {known})")
        if args.out.exists() and not args.out.is_dir():
            raise FlowError(f"--out {args.out}: not a folder (allowed: a writable folder)")
        specs = load_units()
        if args.units:
            by_name = {s.unit: s for s in specs}
            unknown = [u for u in args.units if u not in by_name]
            if unknown:
                raise FlowError(f"unit(s) {', '.join(unknown)} not in synth/units.yaml")
            specs = [by_name[u] for u in args.units]
        stray = sorted(set(args.check) - {s.unit for s in specs})
        if stray:
            raise FlowError(f"--check {', '.join(stray)}: not among the units to synthesize "
                            f"(synth/units.yaml or --units)")
        if args.liberty is not None and not args.liberty.is_file():
            raise FlowError(f"Liberty file {args.liberty} does not exist")
        lib = parse_liberty(args.liberty if args.liberty else default_liberty())
        node = args.node_nm if args.node_nm is not None else cfg.liberty_nodes_nm.get(lib.name)
        if node is not None and cfg.scale_factor(node) is None:
            raise FlowError(f"no area scaling factor for {node} nm in synth/config.yaml "
                            f"(allowed: {known})")
        tm = load_timing()
        delay = abc_delay_ps(tm, node)
        log(f"ABC delay target: {delay} ps in the synthesis node (one SPU cycle of "
            f"{tm.abc_target_memory} in the {tm.abc_target_process} process)"
            if delay else "ABC delay target: no delay fit for this node, half the STA period")
        with executor_from_args(args) as ex:   # an unreachable cluster: before any output
            args.out.mkdir(parents=True, exist_ok=True)
            results = run_flow(specs, lib, cfg, args.out, require=bool(args.units),
                               delay_ps=delay, executor=ex, measured=args.measured,
                               check=tuple(args.check), record=args.record)
        rows = make_rows(results, cfg, node)
        write_csv(rows, args.out / "area.csv")
        trows = write_timing(rows, tm, node, args.out)
        brows = write_breakdown(results, args.out)
        write_markdown(rows, args.out / "area.md", cfg, node, breakdown=brows, timing=trows,
                       model=tm)
        if rows:
            write_plot(rows, args.out / "area.png")
            write_plot(rows, args.out / "area_breakdown.png", breakdown=brows)
        log(f"wrote {args.out / 'area.csv'}, area.md, area.png, area_breakdown.csv/.png, "
            f"timing.csv ({len(rows)} units, {time.monotonic() - t0:.1f} s)")
    except (FlowError, ConfigError, ExecutorError) as exc:
        print(f"synth: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # e.g. --out not writable: one line, not a traceback
        print(f"synth: error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
