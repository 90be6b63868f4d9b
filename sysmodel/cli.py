"""Command line: ``run`` one point, ``sweep`` a figure or grid, ``plot`` an existing table,
``ablate`` the GPU-model changes, ``calibrate`` the GPU parameters on a CUDA GPU.

Examples::

    python -m sysmodel run --model mamba2-2.7b --system Pimba --gpu A100 --batch 128
    python -m sysmodel sweep --figure 12 --out build/sweep --jobs 2
    python -m sysmodel sweep --grid my_grid.yaml --out build/mine
    python -m sysmodel ablate --out build/ablation
    python -m sysmodel calibrate --out build/calibration/h200.yaml --gpu H200

Errors (bad configuration, unknown names, no CUDA GPU for ``calibrate``) print one line on
stderr and exit with status 2; ``run`` exits with status 3 when the point does not fit in the
GPUs' memory (0 when it fits). Outputs are written to a temporary file and renamed, so
nothing half-written is left.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from executor import ExecutorError, add_executor_args, executor_from_args

from .config import ConfigError
from .hardware import TIMING_FILES, load_hardware
from .sweep import FIGURES, check_out_dir, figure_grid, load_grid, read_table, run_grid
from .system import Point, evaluate, memory_parts_gb
from .workload import CATEGORIES, get_model


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sysmodel", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="evaluate one point and print it")
    run.add_argument("--model", required=True)
    run.add_argument("--system", required=True)
    run.add_argument("--gpu", default="A100")
    run.add_argument("--batch", type=int, default=128)
    run.add_argument("--num-gpus", type=int, default=None,
                     help="tensor-parallel GPUs (default: 8 for *-70b models, else 1)")
    run.add_argument("--input-len", type=int, default=2048)
    run.add_argument("--output-len", type=int, default=2048)
    run.add_argument("--timing", type=Path, default=None,
                     help="SPU timing file preferred over the default search order")
    for sp in (run,):
        _model_options(sp)
    sw = sub.add_parser("sweep", help="run a figure's grid or a grid file")
    which = sw.add_mutually_exclusive_group(required=True)
    which.add_argument("--figure", help="figure number (see docs/sysmodel.md) or 'all'")
    which.add_argument("--grid", type=Path)
    sw.add_argument("--out", type=Path, required=True)
    add_executor_args(sw)          # --executor local|ray, --address, --jobs
    sw.add_argument("--no-plot", action="store_true")
    sw.add_argument("--quiet", action="store_true", help="no progress bar")
    sw.add_argument("--timing", type=Path, default=None)
    _model_options(sw)
    pl = sub.add_parser("plot", help="plot an existing sweep table")
    which = pl.add_mutually_exclusive_group(required=True)
    which.add_argument("--figure", type=int)
    which.add_argument("--grid", type=Path)
    pl.add_argument("--out", type=Path, required=True, help="folder holding <name>.csv")
    ab = sub.add_parser("ablate", help="figure 12/16 ratios and decode-step breakdown, before "
                        "and after each GPU-model change")
    ab.add_argument("--out", type=Path, required=True)
    ab.add_argument("--timing", type=Path, default=None)
    ca = sub.add_parser("calibrate", help="measure the GPU parameters on a CUDA GPU")
    ca.add_argument("--out", type=Path, required=True, help="parameter file (YAML) to write")
    ca.add_argument("--gpu", default="H200", help="gpus.yaml entry the GPU is (default H200)")
    ca.add_argument("--raw", type=Path, default=None,
                    help="raw timings and model comparison (default: OUT with .raw.json)")
    ca.add_argument("--quick", action="store_true", help="fewer sizes and shapes")
    ca.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    return p


def _model_options(sp) -> None:
    sp.add_argument("--no-cuda-graphs", action="store_true",
                    help="launch kernels into a stream instead of replaying a CUDA graph")
    sp.add_argument("--gpu-params", type=Path, default=None,
                    help="a `calibrate` file whose GPU parameters replace gpus.yaml's")


def _hardware(args):
    from .sweep import hardware_for
    params = None
    if args.gpu_params is not None:
        if not args.gpu_params.is_file():
            raise ConfigError(f"{args.gpu_params}: --gpu-params: no such file "
                              "(allowed: a file written by `python -m sysmodel calibrate`)")
        params = str(args.gpu_params)
    return hardware_for(_timing(args.timing), params), params


def _timing(path: Path | None) -> tuple:
    if path is None:
        return TIMING_FILES
    if not path.is_file():
        raise ConfigError(f"{path}: --timing: no such file (allowed: an SPU timing YAML)")
    return (path,) + TIMING_FILES


def _print_result(result, parts: dict) -> None:
    row = result.row()
    p = result.point
    print(f"model {p.model}  system {p.system}  gpu {p.num_gpus} x {p.gpu}  batch {p.batch_size}"
          f"  input {p.input_len}  output {p.output_len}")
    print(f"throughput       {row['tokens_per_s']:12.1f} tokens/s")
    print(f"latency / token  {row['latency_per_token_s'] * 1e3:12.3f} ms")
    print(f"generation time  {row['time_total_s']:12.3f} s   energy {row['energy_j']:.1f} J")
    print(f"{'part':<14}{'time s':>12}{'share':>8}{'energy J':>14}{'share':>8}")
    for c in CATEGORIES:
        t, e = row[f"time_{c}_s"], row[f"energy_{c}_j"]
        print(f"{c:<14}{t:12.4f}{t / row['time_total_s']:8.1%}{e:14.2f}"
              f"{e / row['energy_j']:8.1%}")
    fits = "yes" if row["fits_memory"] else "NO"
    print(f"memory / GPU     {row['memory_gb_per_gpu']:12.1f} GB of "
          f"{row['memory_capacity_gb']:.0f} GB (fits: {fits}; " + ", ".join(
              f"{k} {v:.1f}" for k, v in parts.items()) + ")")
    print(f"kernels / step   {row['kernels_per_step']:12d}   "
          f"({'CUDA graph' if row['cuda_graphs'] else 'stream launches'})")
    if row["timing_source"]:
        print(f"SPU timing from  {row['timing_source']}")


def main(argv: list | None = None) -> int:
    """Entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "run":
            hw, _ = _hardware(args)
            gpus = args.num_gpus if args.num_gpus is not None else (
                8 if args.model.endswith("70b") else 1)
            for option, value in (("--num-gpus", gpus), ("--batch", args.batch),
                                  ("--output-len", args.output_len)):
                if value < 1:  # zero is not "not given"
                    raise ConfigError(f"{option} {value}: out of range (allowed: an integer >= 1)")
            if args.input_len < 0:
                raise ConfigError(f"--input-len {args.input_len}: out of range "
                                  "(allowed: an integer >= 0)")
            point = Point(model=args.model, system=args.system, gpu=args.gpu,
                          num_gpus=gpus, batch_size=args.batch, input_len=args.input_len,
                          output_len=args.output_len,
                          cuda_graphs=False if args.no_cuda_graphs else None)
            result = evaluate(point, hw)
            parts = memory_parts_gb(get_model(point.model), hw.system(point.system), point)
            _print_result(result, parts)
            if not result.fits_memory:
                print(f"error: does not fit: {result.memory_gb_per_gpu:.1f} GB per GPU > "
                      f"{result.memory_capacity_gb:.0f} GB of {point.num_gpus} x {point.gpu}",
                      file=sys.stderr)
                return 3
            return 0
        if args.command == "ablate":
            from .ablation import write_ablation
            paths = write_ablation(args.out, load_hardware(timing_files=_timing(args.timing)))
            print(f"ablation -> {paths['csv']}, {paths['md']}")
            return 0
        if args.command == "calibrate":
            from .calibrate import (CalibrationError, CalibrationUnavailable, calibrate,
                                    relative_errors)
            gpu = load_hardware().gpu(args.gpu)
            try:
                params = calibrate(args.out, gpu, args.raw, quick=args.quick, seed=args.seed)
            except CalibrationUnavailable as exc:
                print(f"error: calibrate needs a CUDA GPU: {exc}", file=sys.stderr)
                return 2
            except CalibrationError as exc:
                print(f"error: calibrate: {exc}", file=sys.stderr)
                return 2
            print(f"calibrate {args.gpu}: " + ", ".join(f"{k} {v}" for k, v in params.items())
                  + f" -> {args.out}")
            raw = json.loads((args.raw or args.out.with_suffix(".raw.json")).read_text())
            for bench, err in relative_errors(raw["comparison"]).items():
                print(f"  model vs measured, {bench:<14} mean |error| {err:6.1f} %")
            return 0
        if args.command == "plot":
            grid = load_grid(figure_grid(args.figure) if args.figure is not None else args.grid)
            from .plot import plot_table
            csv_path = args.out / f"{grid.name}.csv"
            if not csv_path.is_file():
                raise ConfigError(f"{csv_path}: no such table (allowed: run sweep first)")
            plot_table(read_table(csv_path), grid, check_out_dir(args.out) / f"{grid.name}.png")
            return 0
        if args.grid is not None:
            paths = [args.grid]
        elif args.figure == "all":
            paths = [figure_grid(n) for n in FIGURES]
        else:
            paths = [figure_grid(_figure_number(args.figure))]
        grids = [load_grid(path) for path in paths]  # validate every grid before running any
        _, params = _hardware(args)                    # validate --gpu-params before running
        if args.no_cuda_graphs:
            grids = [replace(g, points=tuple(replace(p, cuda_graphs=False) for p in g.points))
                     for g in grids]
        check_out_dir(args.out)
        with executor_from_args(args) as ex:
            for grid in grids:
                out = run_grid(grid, args.out, plot=not args.no_plot,
                               progress=not args.quiet, timing_files=_timing(args.timing),
                               gpu_params=params, executor=ex)
                written = [str(out["csv"])] + ([str(out["png"])] if out["png"] else [])
                print(f"{grid.name}: {len(grid.points)} points in {out['seconds']:.2f} s -> "
                      + ", ".join(written))
        return 0
    except (ConfigError, ValueError, ExecutorError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # an output that cannot be written: one line, nothing half-written
        print(f"error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2


def _figure_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"--figure {text}: no such figure (allowed: "
                          f"{', '.join(map(str, FIGURES))}, all)") from None
