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

import csv
import io
import os
import re
import secrets
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from executor import Executor, LocalExecutor

from .config import CONFIG_DIR, ConfigError, Section
from .hardware import TIMING_FILES, apply_gpu_params, load_hardware
from .system import Point, evaluate
from .workload import CATEGORIES, load_models

GRID_DIR = CONFIG_DIR / "grids"
#: A grid name names its output files inside ``--out``: no path separators, no hidden files.
GRID_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")
FIGURES = (3, 5, 12, 13, 14, 16)
PLOT_KINDS = ("throughput", "state_update", "time_breakdown", "energy_breakdown")
COLUMNS = (["model", "system", "gpu", "num_gpus", "batch_size", "input_len", "output_len",
            "tokens_per_s", "latency_per_token_s", "time_total_s"]
           + [f"time_{c}_s" for c in CATEGORIES] + ["energy_j"]
           + [f"energy_{c}_j" for c in CATEGORIES]
           + ["state_update_tokens_per_s", "memory_gb_per_gpu", "memory_capacity_gb",
              "fits_memory", "cuda_graphs", "kernels_per_step", "timing_source"])


@dataclass(frozen=True)
class Grid:
    """A parsed grid file: name, plot settings and the points in run order."""

    name: str
    title: str
    plot_kind: str
    baseline: str
    points: tuple


def load_grid(path: Path | str) -> Grid:
    """Parse and validate a grid file (models, systems and GPUs must exist)."""
    top = Section.from_file(path)
    top.check_keys(["title", "plot", "blocks"], ["figure", "name"])
    if top.has("figure"):
        name = f"fig{top.integer('figure', minimum=1)}"
    elif top.has("name"):
        name = top.string("name")
        if not GRID_NAME.fullmatch(name):  # the name becomes <out>/<name>.csv
            raise top.fail("name", f"bad name {name!r}", "a file name inside --out: letters, "
                           "digits, '_', '-', '.', not starting with '.' or '-'")
    else:
        raise top.fail("figure", "missing key (figure or name)", "figure: <int> or name: <str>")
    plot = top.section("plot")
    plot.check_keys(["kind", "baseline"])
    hw = load_hardware()
    models = load_models()
    raw = top.raw("blocks")
    if not isinstance(raw, list) or not raw:
        raise top.fail("blocks", "expected a non-empty list", "a list of blocks")
    points = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise top.fail(f"blocks[{i}]", "expected a mapping", "models, systems, ...")
        b = Section(item, top.file, f"blocks[{i}]")
        b.check_keys(["models", "systems", "gpus", "num_gpus", "batch_sizes", "input_len",
                      "output_len"])
        for model in b.str_list("models", models):
            for gpu in b.str_list("gpus", hw.gpus):
                for batch in b.int_list("batch_sizes"):
                    for system in b.str_list("systems", hw.systems):
                        points.append(Point(model=model, system=system, gpu=gpu,
                                            num_gpus=b.integer("num_gpus", minimum=1),
                                            batch_size=batch,
                                            input_len=b.integer("input_len", minimum=0),
                                            output_len=b.integer("output_len", minimum=1)))
    baseline = plot.string("baseline", sorted({p.system for p in points}))
    return Grid(name=name, title=top.string("title"), plot_kind=plot.string("kind", PLOT_KINDS),
                baseline=baseline, points=tuple(points))


def figure_grid(number: int) -> Path:
    """Path of the grid file of figure ``number``."""
    if number not in FIGURES:
        raise ConfigError(f"--figure {number}: no such figure "
                          f"(allowed: {', '.join(map(str, FIGURES))})")
    return GRID_DIR / f"fig{number}.yaml"


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
    if executor is not None:
        done = executor.map(_evaluate_rows, chunks)
    else:
        with LocalExecutor(jobs) as ex:
            done = ex.map(_evaluate_rows, chunks)
    for chunk in done:
        rows += chunk
        bar.step(len(chunk))
    return rows


def format_value(value) -> str:
    """Deterministic text of a table cell (floats with 10 significant digits)."""
    if isinstance(value, float):
        return format(value, ".10g")
    return str(value)


def table_text(rows: list) -> str:
    """CSV text of ``rows`` with the columns of :data:`COLUMNS`."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([format_value(row[c]) for c in COLUMNS])
    return buf.getvalue()


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file next to ``path``, then rename it into place. The file
    gets mode ``0666 & ~umask`` like any file the user creates (mkstemp would give 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = str(path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_together(files: dict) -> None:
    """Write several ``{path: bytes}`` files so that they appear together or not at all: every
    file goes to a temporary name first (see :func:`write_atomic`), the renames come last."""
    tmps = {}
    try:
        for path, data in files.items():
            path = Path(path)
            if path.is_dir():
                raise ConfigError(f"{path}: is a folder (allowed: a file path to write)")
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            tmps[path] = tmp
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
        for path, tmp in tmps.items():
            os.replace(tmp, path)
    finally:
        for tmp in tmps.values():
            if os.path.exists(tmp):
                os.unlink(tmp)


def check_out_dir(out_dir: Path | str, option: str = "--out") -> Path:
    """Create the output folder ``out_dir`` or refuse it with one line (a file, not writable)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"{option} {out_dir}: not a folder (allowed: a writable folder)")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{option} {out_dir}: cannot create ({exc.strerror}) "
                          "(allowed: a writable folder)") from None
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise ConfigError(f"{option} {out_dir}: not writable (allowed: a writable folder)")
    return out_dir


def read_table(path: Path | str) -> list:
    """Rows of a sweep CSV, numbers converted back."""
    with open(path, newline="", encoding="utf-8") as fh:
        return parse_table(fh)


def parse_table(lines) -> list:
    """Rows of sweep CSV text (an open file or a list of lines), numbers converted back."""
    rows = list(csv.DictReader(lines))
    ints = {"num_gpus", "batch_size", "input_len", "output_len", "fits_memory", "cuda_graphs",
            "kernels_per_step"}
    text = {"model", "system", "gpu", "timing_source"}
    for row in rows:
        for key, value in row.items():
            if key in ints:
                row[key] = int(value)
            elif key not in text:
                row[key] = float(value)
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
        from .plot import render_png
        files[png] = render_png(parse_table(text.splitlines()), grid)
    write_together(files)
    return {"csv": csv_path, "png": png, "seconds": seconds}
