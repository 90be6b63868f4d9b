"""Configuration of the synthesis flow: technology/scaling constants and the unit list.

Both come from YAML files next to this module (``config.yaml``, ``units.yaml``) and are
validated on load; an error names the file, the key and what was expected.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

__all__ = ["ConfigError", "SynthConfig", "UnitSpec", "load_config", "load_units",
           "CONFIG_PATH", "UNITS_PATH"]

CONFIG_PATH = Path(__file__).with_name("config.yaml")
UNITS_PATH = Path(__file__).with_name("units.yaml")


class ConfigError(ValueError):
    """A configuration file is missing a key or holds a wrong value."""


@dataclass(frozen=True)
class SynthConfig:
    """Technology and scaling constants (see ``synth/config.yaml`` and ``docs/synth.md``)."""

    sta_clock_period_ns: float
    liberty_nodes_nm: dict[str, int]
    target_node_nm: int
    area_scale_to_target: dict[int, float]
    dram_process_factor: float
    hbm_die_area_mm2: float
    hbm_die_capacity_gbit: float
    hbm_banks_per_die: int

    @property
    def bank_pair_area_mm2(self) -> float:
        """Die area per pair of banks (periphery and TSVs shared out evenly)."""
        return self.hbm_die_area_mm2 / (self.hbm_banks_per_die / 2)

    def scale_factor(self, node_nm: int | None) -> float | None:
        """Area factor from ``node_nm`` to the target node, or ``None`` when unknown."""
        if node_nm is None:
            return None
        return self.area_scale_to_target.get(int(node_nm))


@dataclass(frozen=True)
class UnitSpec:
    """One line of ``units.yaml``."""

    unit: str
    format: str
    sharing: str
    per_bank_pair: int


def _read(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def _positive(path, key, value, kind=float):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError(f"{path}: key {key!r} must be a positive number, not {value!r}")
    return kind(value)


def load_config(path: Path | str = CONFIG_PATH) -> SynthConfig:
    """Load and validate the technology/scaling constants."""
    path = Path(path)
    data = _read(path)
    fields = list(SynthConfig.__dataclass_fields__)
    missing = [k for k in fields if k not in data]
    extra = [k for k in data if k not in fields]
    if missing or extra:
        raise ConfigError(f"{path}: missing keys {missing}, unknown keys {extra}; "
                          f"expected exactly {fields}")
    nodes = data["liberty_nodes_nm"]
    scale = data["area_scale_to_target"]
    if not isinstance(nodes, dict) or not isinstance(scale, dict):
        raise ConfigError(f"{path}: 'liberty_nodes_nm' and 'area_scale_to_target' must be "
                          "mappings")
    target = int(_positive(path, "target_node_nm", data["target_node_nm"], int))
    if scale.get(target) != 1.0:
        raise ConfigError(f"{path}: key 'area_scale_to_target' must map the target node "
                          f"{target} to 1.0")
    return SynthConfig(
        sta_clock_period_ns=_positive(path, "sta_clock_period_ns", data["sta_clock_period_ns"]),
        liberty_nodes_nm={str(k): _positive(path, f"liberty_nodes_nm.{k}", v, int)
                          for k, v in nodes.items()},
        target_node_nm=target,
        area_scale_to_target={int(k): _positive(path, f"area_scale_to_target.{k}", v)
                              for k, v in scale.items()},
        dram_process_factor=_positive(path, "dram_process_factor", data["dram_process_factor"]),
        hbm_die_area_mm2=_positive(path, "hbm_die_area_mm2", data["hbm_die_area_mm2"]),
        hbm_die_capacity_gbit=_positive(path, "hbm_die_capacity_gbit",
                                        data["hbm_die_capacity_gbit"]),
        hbm_banks_per_die=_positive(path, "hbm_banks_per_die", data["hbm_banks_per_die"], int),
    )


def load_units(path: Path | str = UNITS_PATH) -> list[UnitSpec]:
    """Load and validate the list of units to synthesize."""
    path = Path(path)
    entries = _read(path).get("units")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{path}: key 'units' must be a non-empty list")
    specs, seen = [], set()
    keys = list(UnitSpec.__dataclass_fields__)
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or sorted(entry) != sorted(keys):
            raise ConfigError(f"{path}: units[{i}] must have exactly the keys {keys}")
        if not str(entry["unit"]).isidentifier():
            raise ConfigError(f"{path}: units[{i}].unit must be an identifier")
        if entry["unit"] in seen:
            raise ConfigError(f"{path}: unit {entry['unit']!r} is listed twice")
        seen.add(entry["unit"])
        specs.append(UnitSpec(str(entry["unit"]), str(entry["format"]), str(entry["sharing"]),
                              _positive(path, f"units[{i}].per_bank_pair",
                                        entry["per_bank_pair"], int)))
    return specs
