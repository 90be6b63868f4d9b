"""Timings measured by RTL co-simulation: the data, its format, its one reader and its writers.

The data: ``spu_timing.yaml`` in this folder (package data; the committed measurement) and
``build/sim/spu_timing.yaml`` (a fresh one, written by the benches; when present the system
model reads it first, so a fresh measurement wins). Both have this format: one top-level
mapping per measured unit, each with its measured numbers and its ``provenance``
(:data:`PROVENANCE_KEYS`: simulator, seed, git revision, date), written as data:

* the SPU (unit ``spu_mx8``, ``cosim/tb_spu_*.py``): one mapping per mode of
  :data:`quant.constants.MODES` with the keys of :data:`quant.constants.TIMING_KEYS`; the state
  update also has ``writeback_delay`` (SPU cycles from a sub-chunk's read to its write-back;
  odd, so that it always goes to the bank not being read);
* the SPU variants (:data:`SPU_VARIANTS`: ``spu_mx8_fused``, the SPU with the fused state
  update, ``hw.spu.Spu(fused=True)``): one mapping per unit holding one mapping per mode,
  each as the SPU's (with its own ``provenance``);
* the fp16 baseline units (:data:`BASELINE_UNITS`, ``cosim/tb_<unit>.py``, state update
  only): the keys of :data:`BASELINE_KEYS`;
* the HBM-PIM PCU units (:data:`PCU_UNITS`): ``banks_per_unit``, ``lanes`` and per mode the
  keys of :data:`PCU_KEYS`.

What each key means: :data:`KEY_DOCS` (also ``docs/sysmodel.md``). Everything that reads a
timing file (the system model, the co-simulation's merge, the tests, the report) goes through
:func:`read_timing`; the benches write through :func:`write_timing`, :func:`write_unit_timing`
and :func:`write_pcu_timing`, which merge under an exclusive ``flock`` and replace the file
atomically. Standard library and PyYAML only (no torch, no cocotb).
"""

from __future__ import annotations

import datetime
import fcntl
import os
import secrets
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import yaml

from quant.constants import MODES, TIMING_KEYS

__all__ = ["MEASURED_DIR", "COMMITTED_TIMING", "BUILD_TIMING", "MEASURED_FILES", "MODES",
           "TIMING_KEYS", "git_revision", "SPU_EXTRA_KEYS", "SPU_VARIANTS", "spu_variant",
           "BASELINE_UNITS", "BASELINE_KEYS", "PCU_UNITS", "PCU_KEYS", "PROVENANCE_KEYS",
           "TOP_KEYS", "KEY_DOCS", "TimingFileError", "read_timing", "provenance",
           "write_timing", "write_unit_timing", "write_pcu_timing"]

MEASURED_DIR = Path(__file__).resolve().parent
REPO_ROOT = MEASURED_DIR.parents[1]
#: The committed measurement (package data).
COMMITTED_TIMING = MEASURED_DIR / "spu_timing.yaml"
#: A fresh measurement, written by the co-simulation.
BUILD_TIMING = REPO_ROOT / "build" / "sim" / "spu_timing.yaml"
#: The measured files in the order the system model reads them (the first with an entry wins).
MEASURED_FILES = (BUILD_TIMING, COMMITTED_TIMING)

#: Keys of the SPU's state-update entry besides :data:`TIMING_KEYS`.
SPU_EXTRA_KEYS = ("writeback_delay",)
#: SPU variants measured beside the SPU (``spu_mx8``, the top-level modes): one top-level
#: mapping each, with the SPU's mode entries inside (``hw.spu.Spu(fused=True)``).
SPU_VARIANTS = ("spu_mx8_fused",)

#: fp16 baseline units (docs/baselines.md) with a state-update timing mapping in the file.
BASELINE_UNITS = ("timemux_fp16_naive", "pipelined_fp16_perbank", "timemux_fp16_perbank")
BASELINE_KEYS = ("cycles_per_subchunk", "values_per_subchunk", "banks_per_unit",
                 "comps_per_row_pair", "pipeline_depth", "utilization", "vectors_checked")
#: HBM-PIM PCU units (docs/baselines.md): one per bank pair, one per bank.
PCU_UNITS = ("hbmpim_pcu", "hbmpim_pcu_perbank")
#: Keys of each mode of a PCU unit.
PCU_KEYS = ("commands_per_column", "pipeline_depth", "vectors_checked")
#: Where a measurement comes from (every entry has them).
PROVENANCE_KEYS = ("simulator", "seed", "git_revision", "date")
#: Top-level keys of a measured file, in the order they are written.
TOP_KEYS = MODES + SPU_VARIANTS + BASELINE_UNITS + PCU_UNITS


def spu_variant(*, fused: bool) -> str | None:
    """The timing file's mapping of an SPU with these parameters (:data:`SPU_VARIANTS`), None
    for the SPU's own top-level modes."""
    return SPU_VARIANTS[0] if fused else None


#: What each key means (the file's own documentation, also written as its header).
KEY_DOCS = {
    "pipeline_depth": "cycles from the last COMP until its results are out, write-backs done",
    "spu_cycles_per_comp": "SPU cycles (tCCD_L) between back-to-back COMPs",
    "comps_per_row_pair": "COMPs that process one open row in each bank of the pair (no drain)",
    "utilization": "sub-chunks per unit cycle from the first to the last COMP of a row pair",
    "vectors_checked": "results compared bit-exactly with the golden model (quant/) in that run",
    "writeback_delay": "SPU cycles from a sub-chunk's read to its write-back (odd)",
    "cycles_per_subchunk": "unit cycles between back-to-back accepted COMPs",
    "values_per_subchunk": "fp16 values per sub-chunk (one 256-bit column)",
    "banks_per_unit": "banks served by one unit",
    "lanes": "fp16 lanes of a PCU",
    "commands_per_column": "column commands issued per bank column read, whole heads",
    "provenance": "simulator, seed (COCOTB_RANDOM_SEED), git revision, UTC date of the run",
}

_HEADER = ("# Timing measured by RTL co-simulation (cosim/tb_*.py); written by the benches\n"
           "# (sysmodel.measured), never by hand. Format: sysmodel/measured/__init__.py. Keys:\n"
           + "".join(f"#   {k:<20} {v}\n" for k, v in KEY_DOCS.items()))


class TimingFileError(ValueError):
    """A timing file or entry that does not have the format (one line naming file and key)."""


def _fail(path, where: str, problem: str, allowed: str) -> TimingFileError:
    return TimingFileError(f"{path}: {where}: {problem} (allowed: {allowed})")


def _check_keys(path, where: str, entry, required, optional=()) -> None:
    if not isinstance(entry, Mapping):
        raise _fail(path, where, "must be a mapping", ", ".join(required))
    known = list(required) + list(optional)
    for key in required:
        if key not in entry:
            raise _fail(path, f"{where}.{key}", "missing key", ", ".join(known))
    for key in entry:
        if key not in known:
            raise _fail(path, f"{where}.{key}", "unknown key", ", ".join(known))


def _check_entry(path, key: str, entry, *, require_provenance: bool, where: str = "") -> None:
    """Check the entry ``key``: a top-level one, or (``where`` = ``"<variant>."``) a mode
    entry of an SPU variant."""
    name = where + key
    if where and key not in MODES:
        raise _fail(path, name, "unknown key", ", ".join(MODES))
    prov = ("provenance",)
    req, opt = (prov, ()) if require_provenance else ((), prov)
    if key in MODES:
        extra = SPU_EXTRA_KEYS if key == "state_update" else ()
        _check_keys(path, name, entry, TIMING_KEYS + req, opt + extra)
    elif key in SPU_VARIANTS:
        _check_keys(path, key, entry, (), MODES)
        for mode, sub in entry.items():
            _check_entry(path, str(mode), sub, require_provenance=require_provenance,
                         where=f"{key}.")
        return
    elif key in BASELINE_UNITS:
        _check_keys(path, key, entry, BASELINE_KEYS + req, opt)
    elif key in PCU_UNITS:
        _check_keys(path, key, entry, ("banks_per_unit", "lanes") + MODES + req, opt)
        for mode in MODES:
            _check_keys(path, f"{key}.{mode}", entry[mode], PCU_KEYS)
    else:
        raise _fail(path, key, "unknown key", ", ".join(TOP_KEYS))
    if "provenance" in entry:
        _check_keys(path, f"{name}.provenance", entry["provenance"], PROVENANCE_KEYS)


def read_timing(path: str | Path = BUILD_TIMING, *, require_provenance: bool = True) -> dict:
    """The measured timing file at ``path`` as a mapping (``{}`` when there is no file).

    Checks the format: only known units and keys, every key present, and (unless
    ``require_provenance`` is false: hand-written test data) a ``provenance`` per entry.

    Raises
    ------
    TimingFileError
        Unreadable YAML, or an entry not in the format (the message names file and key).
    """
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise TimingFileError(f"{path}: not a YAML file ({type(exc).__name__})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise _fail(path, "top level", "must be a mapping", ", ".join(TOP_KEYS))
    for key, entry in data.items():
        _check_entry(path, str(key), entry, require_provenance=require_provenance)
    return data


def git_revision() -> str:
    """``git describe`` of the checkout (``-dirty`` when it has changes), or ``unknown``."""
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=12"],
                             cwd=REPO_ROOT, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


def provenance(*, simulator: str | None = None, seed: int | str | None = None) -> dict:
    """Where a measurement made now comes from: the simulator (default: cocotb's
    ``SIM_NAME`` inside a simulator, else ``$SIM``), the seed (default
    ``$COCOTB_RANDOM_SEED``), the git revision and the UTC date."""
    if simulator is None:
        cocotb = sys.modules.get("cocotb")
        simulator = getattr(cocotb, "SIM_NAME", None) or os.environ.get("SIM", "") or "unknown"
    if seed is None:
        raw = os.environ.get("COCOTB_RANDOM_SEED", "").strip()
        seed = int(raw) if raw.isdigit() else (raw or "unknown")
    date = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()
    return {"simulator": str(simulator), "seed": seed, "git_revision": git_revision(),
            "date": date}


def _merge(key: str, value: dict, path: str | Path, variant: str | None = None) -> dict:
    """Under a file lock, merge ``{key: value}`` (with ``variant``: into that SPU variant's
    mapping) into the timing file at ``path`` (entries of the other modes and units kept) and
    rewrite it atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _check_entry(path, key, value, require_provenance=True,
                 where="" if variant is None else f"{variant}.")
    with open(path.with_suffix(path.suffix + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            data = read_timing(path)
        except TimingFileError as exc:
            # a file from an older format: this fresh entry replaces it (the system model
            # takes the other entries from the committed measurement)
            print(f"warning: {exc}; rewriting {path} with the new entry only", file=sys.stderr)
            data = {}
        if variant is None:
            data[key] = value
        else:
            data[variant] = {**data.get(variant, {}), key: value}
            data[variant] = {m: data[variant][m] for m in MODES if m in data[variant]}
        data = {k: data[k] for k in TOP_KEYS if k in data}
        text = _HEADER + yaml.safe_dump(data, sort_keys=False)
        # a unique temporary name created with mode 0666 & ~umask (mkstemp would give 0600)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    return data


def _pick(what: str, entry: Mapping, keys) -> dict:
    missing = [k for k in keys if k not in entry]
    if missing:
        raise ValueError(f"timing entry of {what} lacks {', '.join(missing)}")
    return {k: entry[k] for k in keys}


def write_timing(mode: str, entry: Mapping, path: str | Path = BUILD_TIMING,
                 writeback_delay: int | None = None, *, prov: Mapping | None = None,
                 variant: str | None = None) -> dict:
    """Merge the measured SPU ``entry`` of ``mode`` (and, for the state update, its
    ``writeback_delay``) into ``path`` (``variant``: of that SPU variant,
    :data:`SPU_VARIANTS`; None: the SPU ``spu_mx8``); return the whole file."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    if variant is not None and variant not in SPU_VARIANTS:
        raise ValueError(f"variant must be one of {SPU_VARIANTS} or None, not {variant!r}")
    value = _pick(mode, entry, TIMING_KEYS)
    if writeback_delay is not None:
        if mode != "state_update":
            raise ValueError(f"writeback_delay belongs to state_update, not {mode}")
        value["writeback_delay"] = int(writeback_delay)
    value["provenance"] = dict(prov) if prov is not None else provenance()
    return _merge(mode, value, path, variant)


def write_unit_timing(unit: str, entry: Mapping, path: str | Path = BUILD_TIMING, *,
                      prov: Mapping | None = None) -> dict:
    """Merge the measured state-update timing ``entry`` of the baseline ``unit`` into
    ``path`` (the SPU modes and the other units are kept); return the whole file."""
    if unit not in BASELINE_UNITS:
        raise ValueError(f"unit must be one of {BASELINE_UNITS}, not {unit!r}")
    value = _pick(unit, entry, BASELINE_KEYS)
    value["provenance"] = dict(prov) if prov is not None else provenance()
    return _merge(unit, value, path)


def write_pcu_timing(unit: str, entry: Mapping, path: str | Path = BUILD_TIMING, *,
                     prov: Mapping | None = None) -> dict:
    """Merge the measured ``entry`` of the PCU ``unit`` (``banks_per_unit``, ``lanes`` and one
    mapping per mode with :data:`PCU_KEYS`) into ``path``; return the whole file."""
    if unit not in PCU_UNITS:
        raise ValueError(f"unit must be one of {PCU_UNITS}, not {unit!r}")
    value = _pick(unit, entry, ("banks_per_unit", "lanes"))
    for mode in MODES:
        if mode not in entry:
            raise ValueError(f"timing entry of {unit} lacks mode {mode}")
        value[mode] = _pick(f"{unit}.{mode}", entry[mode], PCU_KEYS)
    value["provenance"] = dict(prov) if prov is not None else provenance()
    return _merge(unit, value, path)
