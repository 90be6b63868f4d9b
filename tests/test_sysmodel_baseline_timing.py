"""The system model reads the measured timing of the fp16 baseline units (written by their
co-simulation into the SPU timing file) instead of the brief-derived defaults.

The naive 8-cycle unit is an ablation only (``timemux_fp16_naive``); the old key
``hbmpim_fp16`` is nobody's name any more."""

from __future__ import annotations

import pytest
import yaml

from sysmodel.config import CONFIG_DIR, ConfigError
from sysmodel.hardware import RTL_BASELINES, TIMING_FILES, load_hardware
from sysmodel.measured import read_timing

DEFAULTS = (CONFIG_DIR / "spu_timing_defaults.yaml",)
ENTRY = {"cycles_per_subchunk": 8, "values_per_subchunk": 16, "banks_per_unit": 2,
         "comps_per_row_pair": 64, "pipeline_depth": 8, "utilization": 0.125,
         "vectors_checked": 128,
         "provenance": {"simulator": "test", "seed": 1, "git_revision": "test", "date": "2026"}}


def test_measured_baseline_overrides_state_update(tmp_path):
    rtl = tmp_path / "spu_timing.yaml"
    rtl.write_text(yaml.safe_dump({"timemux_fp16_naive": ENTRY}))
    hw = load_hardware(timing_files=(rtl,) + DEFAULTS)
    unit = hw.units["timemux_fp16_naive"]
    su = unit.mode("state_update")
    assert (su.spu_cycles_per_comp, su.comps_per_row_pair, su.pipeline_depth) == (8, 64, 8)
    assert su.vectors_checked == 128 and su.source == str(rtl)
    assert unit.mode("score").source.endswith("spu_timing_defaults.yaml")
    other = hw.units["per_bank_pipelined_fp16"].mode("state_update")
    assert other.source.endswith("spu_timing_defaults.yaml")


def test_bad_baseline_entry_names_file_and_key(tmp_path):
    rtl = tmp_path / "spu_timing.yaml"
    rtl.write_text(yaml.safe_dump({"timemux_fp16_perbank": dict(ENTRY,
                                                                cycles_per_subchunk=0)}))
    with pytest.raises(ConfigError, match="cycles_per_subchunk"):
        load_hardware(timing_files=(rtl,) + DEFAULTS)


def test_committed_timing_file_has_every_baseline():
    committed = TIMING_FILES[1]
    data = read_timing(committed)
    # the claim itself: a missing baseline entry is a failure, never a skip
    missing = [u for u in RTL_BASELINES if u not in data]
    assert not missing, f"{committed} lacks the RTL-measured timing of {missing}"
    hw = load_hardware(timing_files=(committed,) + DEFAULTS)
    for unit in ("timemux_fp16_naive", "per_bank_tm_fp16", "per_bank_pipelined_fp16"):
        su = hw.units[unit].mode("state_update")
        assert su.source == str(committed) and su.vectors_checked > 0
    assert hw.units["per_bank_pipelined_fp16"].mode("state_update").spu_cycles_per_comp == 2


def test_old_hbmpim_fp16_key_is_not_hbm_pim(tmp_path):
    """Nothing calls the naive unit HBM-PIM: a timing file with the old key is refused."""
    rtl = tmp_path / "spu_timing.yaml"
    rtl.write_text(yaml.safe_dump({"hbmpim_fp16": ENTRY}))
    with pytest.raises(ConfigError, match="hbmpim_fp16: unknown key"):
        load_hardware(timing_files=(rtl,) + DEFAULTS)
    hw = load_hardware(timing_files=DEFAULTS)
    assert "hbmpim_fp16" not in RTL_BASELINES
    assert hw.system("GPU+PIM").pim_unit.key == "hbmpim_pcu"
    assert hw.system("GPU+PIM (naive)").pim_unit.key == "timemux_fp16_naive"
    assert hw.system("Time-multiplexed").pim_unit.key == "hbmpim_pcu_perbank"
    for unit in hw.units.values():
        assert "HBM-PIM" not in unit.description or unit.is_pcu
