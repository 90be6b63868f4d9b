"""Sweeps: a grid (YAML) expands to a list of points, run once, written once as a CSV table.

Grid file::

    figure: 12                      # or name: <text>
    title: Throughput ...
    plot: {kind: throughput, baseline: GPU}
    blocks:                         # each block is a cartesian product
      - models: [mamba2-2.7b, ...]
        systems: [GPU, GPU+Q, GPU+PIM, Pimba]
        gpus: [A100]
        num_gpus: 1
        batch_sizes: [32, 64, 128]
        input_len: 2048
        output_len: 2048

Plot kinds: ``throughput`` (tokens/s normalised to ``baseline``), ``state_update``
(state-update tokens/s normalised), ``time_breakdown`` and ``energy_breakdown`` (stacked
parts normalised to the baseline system's total). Plotting is :mod:`sysmodel.plot`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from executor import Executor, run_all

from .config import ConfigError
# the grid and table names are part of the sweep's interface (re-exported)
from .grid import (COLUMNS, FIGURES, GRID_DIR, GRID_NAME, PLOT_KINDS, Grid,  # noqa: F401
                   check_out_dir, figure_grid, format_value, load_grid, parse_table, read_table,
                   table_text, write_atomic, write_together)
from .hardware import TIMING_FILES, apply_gpu_params, load_hardware
from .system import evaluate

def hardware_for(timing_files: tuple = TIMING_FILES, gpu_params: str | None = None):
    """The hardware with these SPU timing files and, if given, a ``calibrate`` file's GPU
    parameters (:func:`sysmodel.hardware.apply_gpu_params`)."""
    hw = load_hardware(timing_files=timing_files)
    return hw if gpu_params is None else _with_params(hw, gpu_params)


_PARAMS_CACHE: dict = {}


def _with_params(hw, path: str):
    key = (id(hw), path)
    if key not in _PARAMS_CACHE:
        _PARAMS_CACHE[key] = apply_gpu_params(hw, path)
    return _PARAMS_CACHE[key]


def _evaluate_row(args: tuple) -> dict:
    point, timing_files, gpu_params = args
    return evaluate(point, hardware_for(timing_files, gpu_params)).row()


class Progress:
    """A one-line progress bar on a stream (silent when ``enabled`` is false)."""

    def __init__(self, total: int, label: str, stream=sys.stderr, enabled: bool = True,
                 width: int = 30):
        self.total, self.label, self.stream = total, label, stream
        self.enabled, self.width, self.done = enabled, width, 0
        self.start = time.perf_counter()

    def step(self, n: int = 1) -> None:
        """Advance by ``n`` points; redraw when the bar grows (on a terminal) or at the end."""
        before = self.width * self.done // max(self.total, 1)
        self.done += n
        if not self.enabled:
            return
        filled = self.width * self.done // max(self.total, 1)
        finished = self.done >= self.total
        if not finished and (filled == before or not self.stream.isatty()):
            return
        bar = "#" * filled + "." * (self.width - filled)
        elapsed = time.perf_counter() - self.start
        end = "\n" if finished else ""
        self.stream.write(f"\r{self.label} [{bar}] {self.done}/{self.total} {elapsed:5.1f}s{end}")
        self.stream.flush()


def _evaluate_rows(chunk: list) -> list:
    """A job of :func:`run_points`: a few points (one process round trip for several)."""
    return [_evaluate_row(a) for a in chunk]


def run_points(points, jobs: int = 1, timing_files: tuple = TIMING_FILES,
               progress: bool = True, label: str = "sweep", gpu_params=None,
               executor: Executor | None = None) -> list:
    """Evaluate ``points`` on ``executor`` (default: a local pool of ``jobs`` processes,
    :mod:`executor`); rows in input order."""
    bar = Progress(len(points), label, enabled=progress)
    params = None if gpu_params is None else str(gpu_params)
    args = [(p, tuple(str(f) for f in timing_files), params) for p in points]
    rows = []
    if executor is None and (jobs <= 1 or len(points) < 2):
        for a in args:
            rows.append(_evaluate_row(a))
            bar.step()
        return rows
    width = (getattr(executor, "jobs", None) if executor is not None else None) or jobs
    size = max(1, len(args) // (4 * max(1, width)))
    chunks = [args[i:i + size] for i in range(0, len(args), size)]
    for chunk in run_all(_evaluate_rows, chunks, executor, jobs):
        rows += chunk
        bar.step(len(chunk))
    return rows


def run_grid(grid: Grid, out_dir: Path | str, jobs: int = 1, plot: bool = True,
             progress: bool = True, timing_files: tuple = TIMING_FILES,
             gpu_params=None, executor: Executor | None = None) -> dict:
    """Run a grid, write ``<out>/<name>.csv`` and (unless ``plot`` is false) the PNG.

    Returns
    -------
    dict
        ``csv`` and ``png`` paths and ``seconds`` spent evaluating.
    """
    out_dir = check_out_dir(out_dir)
    csv_path = out_dir / f"{grid.name}.csv"
    png = out_dir / f"{grid.name}.png" if plot else None
    for path in (csv_path, png):
        if path is not None and path.is_dir():  # refused before the (long) run
            raise ConfigError(f"{path}: is a folder (allowed: a file path to write)")
    start = time.perf_counter()
    rows = run_points(grid.points, jobs=jobs, timing_files=timing_files, progress=progress,
                      label=grid.name, gpu_params=gpu_params, executor=executor)
    seconds = time.perf_counter() - start
    text = table_text(rows)
    files = {csv_path: text.encode("utf-8")}
    if plot:  # the CSV and its PNG appear together or not at all
        from .plot import render_png  # (matplotlib only when a plot is asked for)
        files[png] = render_png(parse_table(text.splitlines()), grid)
    write_together(files)
    return {"csv": csv_path, "png": png, "seconds": seconds}
