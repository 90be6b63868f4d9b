"""A sweep's grid and its table: the grid file parsed into points, the CSV written and read.

The pieces that both the sweep (:mod:`sysmodel.sweep`, which runs the points) and the plots
(:mod:`sysmodel.plot`, which draw a table) need; it imports neither. Grid file format:
:mod:`sysmodel.sweep`.
"""

from __future__ import annotations

import csv
import io
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from .config import CONFIG_DIR, ConfigError, Section
from .hardware import load_hardware
from .system import Point
from .workload import CATEGORIES, load_models

__all__ = ["GRID_DIR", "GRID_NAME", "FIGURES", "PLOT_KINDS", "COLUMNS", "Grid", "load_grid",
           "figure_grid", "format_value", "table_text", "write_atomic", "write_together",
           "check_out_dir", "read_table", "parse_table"]

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
