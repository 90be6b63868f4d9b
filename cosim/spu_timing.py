"""The SPU timing file (``build/sim/spu_timing.yaml``, committed copy ``hw/spu_timing.yaml``).

One mapping per mode (``state_update``, ``score``, ``attend``) with the keys of
:data:`TIMING_KEYS`, all measured by the SPU co-simulation (``cosim/tb_spu_*.py``) and read by
the system model (:mod:`sysmodel.hardware`). The fp16 baseline units add one mapping per unit
(:data:`BASELINE_UNITS`, keys :data:`BASELINE_KEYS`, state update only), measured by
``cosim/tb_<unit>.py`` and written by :func:`write_unit_timing`. The HBM-PIM PCU units
(:data:`PCU_UNITS`) add one mapping each (``banks_per_unit``, ``lanes`` and per mode the keys
:data:`PCU_KEYS`), measured by ``cosim/tb_hbmpim_pcu*.py`` and written by
:func:`write_pcu_timing`. Writers merge under an exclusive ``flock`` and replace the file
atomically.
"""

from __future__ import annotations

import fcntl
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

import yaml

__all__ = ["TIMING_KEYS", "MODES", "BUILD_TIMING", "COMMITTED_TIMING", "read_timing",
           "write_timing", "BASELINE_UNITS", "BASELINE_KEYS", "write_unit_timing",
           "PCU_UNITS", "PCU_KEYS", "write_pcu_timing"]

REPO_ROOT = Path(__file__).resolve().parents[1]
BUILD_TIMING = REPO_ROOT / "build" / "sim" / "spu_timing.yaml"
COMMITTED_TIMING = REPO_ROOT / "hw" / "spu_timing.yaml"
MODES = ("state_update", "score", "attend")
TIMING_KEYS = ("pipeline_depth", "spu_cycles_per_comp", "comps_per_row_pair", "utilization",
               "vectors_checked")
#: fp16 baseline units (docs/baselines.md) with a state-update timing mapping in the file.
BASELINE_UNITS = ("timemux_fp16_naive", "pipelined_fp16_perbank", "timemux_fp16_perbank")
BASELINE_KEYS = ("cycles_per_subchunk", "values_per_subchunk", "banks_per_unit",
                 "comps_per_row_pair", "pipeline_depth", "utilization", "vectors_checked")
#: HBM-PIM PCU units (docs/baselines.md): one per bank pair, one per bank.
PCU_UNITS = ("hbmpim_pcu", "hbmpim_pcu_perbank")
#: Keys of each mode of a PCU unit.
PCU_KEYS = ("commands_per_column", "pipeline_depth", "vectors_checked")
_TOP = MODES + BASELINE_UNITS + PCU_UNITS

_HEADER = """\
# SPU timing measured by RTL co-simulation (cosim/tb_spu_*.py, unit spu_mx8 with two bank
# models); written by the testbench, never by hand. Per mode:
#   pipeline_depth       SPU cycles from the last COMP of a row pair until all its results are
#                        readable and its write-backs done (o_busy low; a RESULT_READ issued
#                        then returns the final value)
#   spu_cycles_per_comp  SPU cycles (tCCD_L) between back-to-back COMPs
#   comps_per_row_pair   COMPs that process one open row in each bank of the pair (no drain)
#   utilization          sub-chunks per SPU cycle from the first to the last COMP of a row pair
#   vectors_checked      COMPs whose results were compared bit-exactly with quant/ in that run
# State update: the write-back of a sub-chunk comes {wb} SPU cycles after its read (odd, so it
# always goes to the bank that is not being read).
# fp16 ablation units (timemux_fp16_naive, pipelined_fp16_perbank, timemux_fp16_perbank;
# cosim/tb_<unit>.py with bank models; state update only; docs/baselines.md):
#   cycles_per_subchunk  unit cycles between back-to-back accepted COMPs (one sub-chunk each)
#   values_per_subchunk  fp16 values per sub-chunk (one 256-bit column)
#   banks_per_unit       banks served by one unit
#   comps_per_row_pair   COMPs (sub-chunks) one unit processes for one open row in each bank
#   pipeline_depth       cycles from the last COMP until its y partial is out (o_busy low)
#   utilization          sub-chunks per unit cycle over a row pair
#   vectors_checked      sub-chunks compared bit-exactly with quant/fp16_pim.py in that run
# HBM-PIM PCU (hbmpim_pcu: one per bank pair, hbmpim_pcu_perbank: one per bank;
# cosim/tb_<unit>.py with bank models, whole heads of each program; docs/baselines.md):
#   banks_per_unit, lanes  banks one PCU serves, fp16 lanes
#   per mode (state_update, score, attend):
#   commands_per_column  column commands issued / bank columns read, whole heads (register
#                        writes and result reads excluded; they are in quant.hbmpim_programs.plan)
#   pipeline_depth       unit cycles (tCCD_L) from the last column command of a head until a
#                        register read returns the final accumulator and the bank holds the
#                        final column
#   vectors_checked      data columns of that run whose results were compared bit-exactly
#                        with the golden model (quant/hbmpim_pcu.py)
"""


def read_timing(path: str | Path = BUILD_TIMING) -> dict:
    path = Path(path)
    if not path.is_file():
        return {}
    return yaml.safe_load(path.read_text()) or {}


def _merge(key: str, value: dict, path: str | Path, writeback_delay: int | None) -> dict:
    """Under a file lock, merge ``{key: value}`` into the timing file at ``path`` (entries of
    the other modes and units kept, header regenerated) and rewrite it atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(path.suffix + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = read_timing(path)
        data = {m: data[m] for m in _TOP if m in data}
        data[key] = value
        old_wb = None
        if path.is_file():
            for line in path.read_text().splitlines():
                if line.startswith("# State update: the write-back"):
                    old_wb = line.split("comes ")[1].split(" ")[0]
        wb = writeback_delay if writeback_delay is not None else (old_wb or "?")
        text = _HEADER.format(wb=wb) + yaml.safe_dump(
            {m: data[m] for m in _TOP if m in data}, sort_keys=False)
        # a unique temporary name created with mode 0666 & ~umask (mkstemp would give 0600)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    return data


def write_timing(mode: str, entry: Mapping, path: str | Path = BUILD_TIMING,
                 writeback_delay: int | None = None) -> dict:
    """Merge the measured ``entry`` of ``mode`` into ``path``; return the whole file."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    missing = [k for k in TIMING_KEYS if k not in entry]
    if missing:
        raise ValueError(f"timing entry of {mode} lacks {', '.join(missing)}")
    return _merge(mode, {k: entry[k] for k in TIMING_KEYS}, path, writeback_delay)


def write_unit_timing(unit: str, entry: Mapping, path: str | Path = BUILD_TIMING) -> dict:
    """Merge the measured state-update timing ``entry`` of the baseline ``unit`` into
    ``path`` (the SPU modes and the other units are kept); return the whole file."""
    if unit not in BASELINE_UNITS:
        raise ValueError(f"unit must be one of {BASELINE_UNITS}, not {unit!r}")
    missing = [k for k in BASELINE_KEYS if k not in entry]
    if missing:
        raise ValueError(f"timing entry of {unit} lacks {', '.join(missing)}")
    return _merge(unit, {k: entry[k] for k in BASELINE_KEYS}, path, None)


def write_pcu_timing(unit: str, entry: Mapping, path: str | Path = BUILD_TIMING) -> dict:
    """Merge the measured ``entry`` of the PCU ``unit`` (``banks_per_unit``, ``lanes`` and one
    mapping per mode with :data:`PCU_KEYS`) into ``path``; return the whole file."""
    if unit not in PCU_UNITS:
        raise ValueError(f"unit must be one of {PCU_UNITS}, not {unit!r}")
    value = {}
    for key in ("banks_per_unit", "lanes"):
        if key not in entry:
            raise ValueError(f"timing entry of {unit} lacks {key}")
        value[key] = entry[key]
    for mode in MODES:
        if mode not in entry:
            raise ValueError(f"timing entry of {unit} lacks mode {mode}")
        missing = [k for k in PCU_KEYS if k not in entry[mode]]
        if missing:
            raise ValueError(f"timing entry of {unit}.{mode} lacks {', '.join(missing)}")
        value[mode] = {k: entry[mode][k] for k in PCU_KEYS}
    return _merge(unit, value, path, None)
