"""Export the registered Amaranth units to Verilog.

Usage::

    python -m hw.export --out build/verilog [--unit NAME ...] [--list] [--hashes]

``--hashes`` prints the SHA-256 of each unit's Verilog text (``sha256sum`` format, nothing
written): a refactoring that must not change the RTL compares these before and after.

A *unit* is a named, fully parameterised component: ``UNITS[name]`` is a zero-argument factory
returning a fresh :class:`~amaranth.lib.wiring.Component`. A module of the ``hw`` package adds
its units at import time::

    from hw.export import register_unit
    register_unit("mx_mul", lambda: MxMultiplier(lanes=32))

and :func:`load_units` imports every module of the package, so a new file needs no other edit.
Each unit becomes ``<out>/<name>.v`` holding a module called ``<name>`` whose ports are the
component's ports (``clk``/``rst`` for the ``sync`` domain, nested members joined with ``__``).

Amaranth 0.5's ``verilog.convert`` has no timescale option; the files get a leading
```timescale 1ns/1ps`` so that Icarus and Verilator agree on time units. A file is rewritten
only when its text changes, so simulator builds stay incremental.

:func:`export_cached` skips the elaboration altogether when nothing it depends on changed: the
key is a hash of the unit's name, the sources of the ``hw`` package, the module that
registered the unit and the Amaranth version, kept next to the file (``<name>.v.key``).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import inspect
import os
import pkgutil
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from amaranth.back import verilog
from amaranth.lib import wiring

__all__ = ["TIMESCALE", "UNITS", "export_cached", "export_unit", "export_units", "load_units",
           "main", "register_unit", "source_key", "to_verilog", "verilog_hash"]

TIMESCALE = "`timescale 1ns/1ps"

#: Registry of exportable units: name -> zero-argument component factory.
UNITS: dict[str, Callable[[], wiring.Component]] = {}

# Modules of the package that hold tooling, not units.
_NOT_UNIT_MODULES = frozenset({"export", "tools"})


def register_unit(name: str, factory: Callable[[], wiring.Component]) -> None:
    """Add the unit ``name`` built by ``factory`` to :data:`UNITS`.

    Raises
    ------
    ValueError
        If ``name`` is not a Verilog identifier or is already registered by another factory.
    TypeError
        If ``factory`` is not callable.
    """
    if not name.isidentifier() or not name.isascii():
        raise ValueError(f"Unit name must be a Verilog identifier, not {name!r}")
    if not callable(factory):
        raise TypeError(f"Unit factory must be callable, not {factory!r}")
    existing = UNITS.get(name)
    # Re-importing a module (e.g. ``python -m hw.x``) re-registers its own units: allowed.
    module = getattr(factory, "__module__", None)
    if existing is not None and getattr(existing, "__module__", None) != module:
        raise ValueError(f"Unit {name!r} is already registered by {existing!r}")
    UNITS[name] = factory


def load_units() -> dict[str, Callable[[], wiring.Component]]:
    """Import every module of the ``hw`` package so that their units register; return UNITS."""
    package = importlib.import_module("hw")
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("_") or info.name in _NOT_UNIT_MODULES:
            continue
        importlib.import_module(f"hw.{info.name}")
    return UNITS


def to_verilog(component: wiring.Component, name: str) -> str:
    """Verilog text of ``component`` as module ``name``, with a leading timescale line."""
    text = verilog.convert(component, name=name, emit_src=False)
    return f"{TIMESCALE}\n{text}"


def verilog_hash(name: str) -> str:
    """SHA-256 (hex) of the Verilog text of unit ``name`` (what :func:`export_unit` writes).

    Raises
    ------
    KeyError
        If no unit called ``name`` is registered.
    """
    units = UNITS if name in UNITS else load_units()
    if name not in units:
        known = ", ".join(sorted(units)) or "none"
        raise KeyError(f"Unknown unit {name!r}; registered units: {known}")
    return hashlib.sha256(to_verilog(units[name](), name).encode()).hexdigest()


def export_unit(name: str, out_dir: str | Path) -> Path:
    """Write unit ``name`` to ``out_dir/<name>.v`` (only if its text changed); return the path.

    Raises
    ------
    KeyError
        If no unit called ``name`` is registered (after :func:`load_units`).
    """
    # Units already imported need no package scan (which imports every hw module).
    units = UNITS if name in UNITS else load_units()
    if name not in units:
        known = ", ".join(sorted(units)) or "none"
        raise KeyError(f"Unknown unit {name!r}; registered units: {known}")
    text = to_verilog(units[name](), name)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.v"
    if not path.is_file() or path.read_text() != text:
        _write_atomic(path, text)
    return path


def _write_atomic(path: Path, text: str) -> None:
    # parallel jobs may export the same unit: a reader sees the old or the new file, whole
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


# The hw sources as they were when this process imported them (hw.export is imported before
# any unit module): a file edited later does not change this process's key, so a stale
# in-memory unit is never exported under the edited sources' key.
_SOURCES = {f: hashlib.sha256(f.read_bytes()).hexdigest()
            for f in Path(__file__).resolve().parent.glob("*.py")}


def source_key(name: str) -> str:
    """Hash of everything the Verilog of unit ``name`` depends on: its name, every source of
    the ``hw`` package, the module that registered it (e.g. a test's mutant) and Amaranth's
    version."""
    import amaranth

    units = UNITS if name in UNITS else load_units()
    if name not in units:
        raise KeyError(f"Unknown unit {name!r}; registered units: {', '.join(sorted(units))}")
    h = hashlib.sha256(f"{name}\0{amaranth.__version__}\0".encode())
    module = sys.modules.get(getattr(units[name], "__module__", "") or "")
    extra = inspect.getsourcefile(module) if module is not None else None
    for f, digest in sorted(_SOURCES.items()):
        h.update(f"{f.name}\0{digest}\0".encode())
    if extra and Path(extra).resolve() not in _SOURCES:
        h.update(hashlib.sha256(Path(extra).read_bytes()).digest())
    return h.hexdigest()


def export_cached(name: str, out_dir: str | Path) -> Path:
    """:func:`export_unit`, skipped when ``out_dir/<name>.v`` was written from the same
    :func:`source_key` (recorded in ``<name>.v.key``)."""
    out_dir = Path(out_dir)
    key = source_key(name)
    path = out_dir / f"{name}.v"
    stamp = out_dir / f"{name}.v.key"
    if path.is_file() and stamp.is_file() and stamp.read_text() == key:
        return path
    path = export_unit(name, out_dir)
    _write_atomic(stamp, key)
    return path


def export_units(out_dir: str | Path, names: Iterable[str] | None = None) -> list[Path]:
    """Export ``names`` (default: every registered unit, sorted) to ``out_dir``."""
    names = sorted(load_units()) if names is None else list(names)
    return [export_unit(name, out_dir) for name in names]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hw.export", description=__doc__.split(
        "\n")[0])
    parser.add_argument("--out", type=Path, default=Path("build/verilog"),
                        help="output folder (default: build/verilog)")
    parser.add_argument("--unit", action="append", metavar="NAME",
                        help="unit to export (repeatable; default: all)")
    parser.add_argument("--list", action="store_true", help="list the registered units")
    parser.add_argument("--hashes", action="store_true",
                        help="print the SHA-256 of each unit's Verilog (sha256sum format); "
                             "write nothing")
    args = parser.parse_args(argv)
    if args.list:
        for name in sorted(load_units()):
            print(name)
        return 0
    if args.hashes:
        try:
            for name in sorted(load_units()) if args.unit is None else args.unit:
                print(f"{verilog_hash(name)}  {name}.v")
        except KeyError as exc:
            parser.error(exc.args[0])
        return 0
    try:
        paths = export_units(args.out, args.unit)
    except KeyError as exc:
        parser.error(exc.args[0])
    for path in paths:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    # Run main() of the importable hw.export, whose UNITS the unit modules register into
    # (this file, run as __main__, is a second module object with an empty registry).
    from hw.export import main as _main
    sys.exit(_main())
