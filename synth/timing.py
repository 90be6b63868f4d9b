"""Delay scaling and clock targets of the synthesis flow (``synth/timing.yaml``).

The critical path measured by OpenSTA in the synthesis library's node is scaled to the logic
node and to a DRAM process with the delay fits of Stillmaker & Baas (2017) and compared with
the SPU clock of every memory of ``sysmodel/configs/hbm.yaml`` (one tCCD_L,
:attr:`sysmodel.hardware.HbmSpec.spu_clock_mhz`). The ABC mapping gets one common delay target
(:func:`abc_delay_ps`) so that the units' areas compare at equal timing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from synth.config import ConfigError

__all__ = ["TIMING_PATH", "DelayModel", "abc_delay_ps", "load_timing", "spu_clocks_mhz",
           "timing_rows"]

TIMING_PATH = Path(__file__).with_name("timing.yaml")
_KEYS = ("delay_poly", "logic_node_nm", "dram_node_nm", "abc_target_memory",
         "abc_target_process")
PROCESSES = ("logic", "dram")


@dataclass(frozen=True)
class DelayModel:
    """Delay factors between nodes (``delay_poly``) and the ABC target."""

    delay_poly: dict[int, tuple[float, tuple[float, ...]]]
    logic_node_nm: int
    dram_node_nm: int
    abc_target_memory: str
    abc_target_process: str

    def factor(self, node_nm: int) -> float:
        """Stillmaker & Baas delay polynomial of ``node_nm`` at its nominal supply."""
        vdd, (c3, c2, c1, c0) = self.delay_poly[node_nm]
        return c3 * vdd ** 3 + c2 * vdd ** 2 + c1 * vdd + c0

    def scale(self, from_nm: int, process: str) -> float:
        """Multiply a delay in ``from_nm`` by this to get it in ``process``."""
        to = self.logic_node_nm if process == "logic" else self.dram_node_nm
        return self.factor(to) / self.factor(from_nm)

    def knows(self, node_nm: int | None) -> bool:
        return node_nm is not None and int(node_nm) in self.delay_poly


def load_timing(path: Path | str = TIMING_PATH) -> DelayModel:
    """Load and validate ``synth/timing.yaml``."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from exc
    if not isinstance(data, dict) or sorted(data) != sorted(_KEYS):
        raise ConfigError(f"{path}: expected exactly the keys {list(_KEYS)}")
    polys = {}
    if not isinstance(data["delay_poly"], dict):
        raise ConfigError(f"{path}: key 'delay_poly' must be a mapping node_nm -> "
                          "{vdd, coeffs}")
    for node, entry in data["delay_poly"].items():
        ok = (isinstance(entry, dict) and sorted(entry) == ["coeffs", "vdd"]
              and isinstance(entry["coeffs"], list) and len(entry["coeffs"]) == 4
              and all(isinstance(c, (int, float)) and not isinstance(c, bool)
                      for c in entry["coeffs"])
              and isinstance(entry["vdd"], (int, float)) and entry["vdd"] > 0)
        if not ok or isinstance(node, bool) or not isinstance(node, int) or node <= 0:
            raise ConfigError(f"{path}: delay_poly.{node} must be {{vdd: >0, coeffs: "
                              f"[c3, c2, c1, c0]}} under a positive int node, not {entry!r}")
        polys[node] = (float(entry["vdd"]), tuple(float(c) for c in entry["coeffs"]))
    for key in ("logic_node_nm", "dram_node_nm"):
        if data[key] not in polys:
            raise ConfigError(f"{path}: key {key!r} = {data[key]!r} has no delay_poly entry "
                              f"(known: {sorted(polys)})")
    if data["abc_target_process"] not in PROCESSES:
        raise ConfigError(f"{path}: key 'abc_target_process' must be one of {PROCESSES}, "
                          f"not {data['abc_target_process']!r}")
    model = DelayModel(polys, data["logic_node_nm"], data["dram_node_nm"],
                       str(data["abc_target_memory"]), data["abc_target_process"])
    clocks = spu_clocks_mhz()
    if model.abc_target_memory not in clocks:
        raise ConfigError(f"{path}: key 'abc_target_memory' = {model.abc_target_memory!r} is "
                          f"not a memory of sysmodel/configs/hbm.yaml ({sorted(clocks)})")
    for key, v in polys.items():
        if DelayModel(polys, key, key, "", "logic").factor(key) <= 0:
            raise ConfigError(f"{path}: delay_poly.{key} gives a non-positive factor")
    return model


def spu_clocks_mhz() -> dict[str, float]:
    """SPU clock (one tCCD_L) of every memory of ``sysmodel/configs/hbm.yaml``."""
    from sysmodel.hardware import load_hardware
    return {k: m.spu_clock_mhz for k, m in load_hardware().memories.items()}


def abc_delay_ps(model: DelayModel, node_nm: int | None) -> int | None:
    """The common ABC delay target in the synthesis node (ps), or None when the node has no
    delay fit: one SPU cycle of ``abc_target_memory`` in ``abc_target_process``."""
    if not model.knows(node_nm):
        return None
    period_ns = 1e3 / spu_clocks_mhz()[model.abc_target_memory]
    return int(round(period_ns / model.scale(int(node_nm), model.abc_target_process) * 1e3))


def timing_rows(rows: list[dict], model: DelayModel, node_nm: int | None) -> list[dict]:
    """Per unit: the critical path in the synthesis node, scaled to the logic node and the
    DRAM process, and met / not met against the SPU clock of each memory."""
    clocks = spu_clocks_mhz()
    out = []
    for r in rows:
        crit = r.get("crit_path_ns")
        row = {"unit": r["unit"], "crit_path_ns": crit}
        for proc in PROCESSES:
            scaled = (None if crit in ("", None) or not model.knows(node_nm)
                      else float(crit) * model.scale(int(node_nm), proc))
            row[f"crit_ns_{proc}"] = "" if scaled is None else round(scaled, 3)
            for mem, mhz in clocks.items():
                row[f"{mem}_{proc}"] = ("" if scaled is None else
                                        ("met" if scaled <= 1e3 / mhz else "NOT met"))
        out.append(row)
    return out
