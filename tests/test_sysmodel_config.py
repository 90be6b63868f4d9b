"""sysmodel configuration: loading, derived values and validation errors that name the key."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import yaml

from sysmodel.cli import main
from sysmodel.config import CONFIG_DIR, ConfigError
from sysmodel.hardware import TIMING_FILES, load_hardware
from sysmodel.workload import load_models

PROV = {"simulator": "test", "seed": 1, "git_revision": "test", "date": "2026-01-01"}
DEFAULTS = (CONFIG_DIR / "spu_timing_defaults.yaml",)
ANALOG = ("tRP", "tRAS", "tWR", "tRTP_S", "tRTP_L", "tREFI", "tRFC", "tFAW", "tRCD", "tRC",
          "tRRD_S", "tRRD_L", "CL", "CWL", "tWTR_L")
BUS = ("tCCD_S", "tCCD_L", "burst", "tRPRE")


def test_brief_hbm2e_timings_verbatim():
    t = load_hardware().memories["hbm2e_a100"].timing
    brief = dict(tRP=14, tRAS=34, tCCD_S=2, tCCD_L=4, tWR=16, tRTP_S=4, tRTP_L=6, tREFI=3900,
                 tFAW=30, tRCD=14, tRC=48, tRRD_S=4, tRRD_L=6, burst=2)
    assert {k: getattr(t, k) for k in brief} == brief


@pytest.mark.parametrize("key", ["hbm3_h100", "hbm3e_h200", "hbm3e_b200"])
def test_other_memories_keep_analog_durations(key):
    hw = load_hardware()
    base, mem = hw.memories["hbm2e_a100"], hw.memories[key]
    ratio = mem.clock_ghz / base.clock_ghz
    for name in ANALOG:
        assert getattr(mem.timing, name) == math.ceil(getattr(base.timing, name) * ratio - 1e-9)
    for name in BUS:
        assert getattr(mem.timing, name) == getattr(base.timing, name)


def test_organisation_and_clocks_match_brief():
    hw = load_hardware()
    a100, h100 = hw.gpu("A100"), hw.gpu("H100")
    m = a100.memory
    assert (m.channels, m.pseudo_channels, m.banks_per_pc, m.banks) == (40, 80, 16, 1280)
    assert m.columns_per_row == 32
    assert abs(m.spu_clock_mhz - 378) < 1 and abs(h100.memory.spu_clock_mhz - 657) < 1
    assert abs(m.peak_gbs - 1935) < 1 and abs(h100.memory.peak_gbs - 3352) < 0.01 * 3352
    assert (a100.sms, a100.tensor_tflops, h100.sms, h100.tensor_tflops) == (108, 312, 132, 989.4)
    assert a100.interconnect.bidirectional_gbs == 600 and h100.interconnect.bidirectional_gbs == 900
    assert set(hw.gpus) == {"A100", "H100", "H200", "B200"}
    assert list(hw.systems)[:4] == ["GPU", "GPU+Q", "GPU+PIM", "Pimba"]


def test_models_match_brief_table():
    models = load_models()
    table = {
        "retnet-2.7b": (32, 2560, 10, 256, 512), "gla-2.7b": (32, 2560, 5, 256, 512),
        "hgrn2-2.7b": (32, 2560, 20, 128, 128), "mamba2-2.7b": (64, 2560, 80, 128, 64),
        "retnet-70b": (96, 7680, 10, 768, 1536), "gla-70b": (96, 7680, 5, 768, 1536),
        "hgrn2-70b": (96, 7680, 20, 384, 384), "mamba2-70b": (192, 7680, 80, 384, 192),
        "opt-7b": (32, 4096, 32, 128, 0), "opt-70b": (80, 8192, 64, 128, 0),
    }
    for name, (layers, hidden, heads, dh, ds) in table.items():
        ly = models[name].layers[0]
        assert (ly.count, models[name].hidden, ly.heads, ly.dim_head, ly.dim_state) == (
            layers, hidden, heads, dh, ds), name
    z7, z70 = models["zamba2-7b"], models["zamba2-70b"]
    assert [(ly.kind, ly.count, ly.heads, ly.dim_head) for ly in z7.layers] == [
        ("mamba2", 81, 112, 64), ("attention", 13, 32, 224)]
    assert [(ly.kind, ly.count, ly.heads, ly.dim_head) for ly in z70.layers] == [
        ("mamba2", 174, 112, 128), ("attention", 28, 64, 224)]
    assert (z7.hidden, z70.hidden) == (3584, 7168)


def _copy_configs(tmp_path: Path) -> Path:
    dst = tmp_path / "configs"
    shutil.copytree(CONFIG_DIR, dst)
    return dst


def _edit(path: Path, fn) -> None:
    data = yaml.safe_load(path.read_text())
    fn(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.mark.parametrize("file,edit,expected", [
    ("gpus.yaml", lambda d: d["A100"].update(sms="many"), "A100.sms"),
    ("gpus.yaml", lambda d: d["A100"].update(smz=3), "A100.smz: unknown key"),
    ("gpus.yaml", lambda d: d["H100"].update(memory="hbm9"), "H100.memory: unknown value"),
    ("gpus.yaml", lambda d: d["A100"].update(dram_gbs=2500.0), "A100.dram_gbs"),
    ("gpus.yaml", lambda d: d["A100"]["gemm_tiles"].update(m=[]), "A100.gemm_tiles.m"),
    ("hbm.yaml", lambda d: d["hbm2e_a100"]["timing"].pop("tFAW"), "hbm2e_a100.timing.tFAW"),
    ("hbm.yaml", lambda d: d["hbm2e_a100"]["timing"].update(tRFC=5000),
     "hbm2e_a100.timing.tRFC"),
    ("systems.yaml", lambda d: d["systems"]["Pimba"].update(state_format="fp16"),
     "systems.Pimba.state_format"),
    ("systems.yaml", lambda d: d["systems"]["GPU"].update(offload=["prefill"]),
     "systems.GPU.offload"),
    ("energy.yaml", lambda d: d["pim"].update(comp_pj=-1.0), "pim.comp_pj"),
    ("pim.yaml", lambda d: d["units"]["pimba_spu"].update(timing_unit="nope"),
     "units.pimba_spu.timing_unit"),
    ("spu_timing_defaults.yaml", lambda d: d["units"]["spu"]["score"].pop("utilization"),
     "units.spu.score.utilization"),
    ("hbm.yaml", lambda d: d["hbm3_h100"].update(refresh="sometimes"),
     "hbm3_h100.refresh: unknown value 'sometimes'"),
    ("hbm.yaml", lambda d: d["hbm2e_a100"].update(max_postponed_refreshes=9),
     "hbm2e_a100.max_postponed_refreshes"),
    ("hbm.yaml", lambda d: d["hbm2e_a100"].pop("refresh"), "hbm2e_a100.refresh: missing key"),
    ("hbm.yaml", lambda d: d["hbm2e_a100"]["timing"].pop("tWTR_L"), "hbm2e_a100.timing.tWTR_L"),
    ("pim.yaml", lambda d: d.update(bank_dealing="row"), "bank_dealing: unknown value 'row'"),
    ("pim.yaml", lambda d: d.update(pcu_turnaround=False), "pcu_turnaround"),
    ("pim.yaml", lambda d: d["units"]["hbmpim_pcu"].update(banks_per_unit=1),
     "units.hbmpim_pcu.banks_per_unit: 1 but the timing file's hbmpim_pcu"),
    ("spu_timing_defaults.yaml",
     lambda d: d["hbmpim_pcu"]["score"].update(commands_per_column=0),
     "hbmpim_pcu.score.commands_per_column"),
    ("spu_timing_defaults.yaml", lambda d: d["hbmpim_pcu"]["attend"].update(cycles=3),
     "hbmpim_pcu.attend.cycles: unknown key"),
    ("spu_timing_defaults.yaml", lambda d: d["hbmpim_pcu_perbank"].pop("lanes"),
     "hbmpim_pcu_perbank.lanes: missing key"),
])
def test_validation_error_names_file_and_key(tmp_path, file, edit, expected):
    root = _copy_configs(tmp_path)
    _edit(root / file, edit)
    with pytest.raises(ConfigError) as info:
        load_hardware(root, timing_files=(root / "spu_timing_defaults.yaml",))
    message = str(info.value)
    assert file in message and expected in message and "allowed:" in message
    assert "\n" not in message


@pytest.mark.parametrize("edit,expected", [
    (lambda d: d["models"]["gla-2.7b"]["layers"][0].update(ffn_kind="swish"),
     "models.gla-2.7b.layers[0].ffn_kind: unknown value 'swish' (allowed: gelu, relu"),
    (lambda d: d["models"]["opt-7b"]["layers"][0].pop("heads"),
     "models.opt-7b.layers[0].heads: missing key"),
    (lambda d: d["models"]["mamba2-2.7b"].update(hidden=0), "models.mamba2-2.7b.hidden"),
])
def test_model_validation(tmp_path, edit, expected):
    root = _copy_configs(tmp_path)
    _edit(root / "models.yaml", edit)
    with pytest.raises(ConfigError, match="models.yaml") as info:
        load_models(root / "models.yaml")
    assert expected in str(info.value)


def test_timing_file_precedence(tmp_path):
    rtl = tmp_path / "spu_timing.yaml"
    rtl.write_text(yaml.safe_dump({
        "state_update": {"pipeline_depth": 5, "spu_cycles_per_comp": 1,
                         "comps_per_row_pair": 66, "utilization": 0.97,
                         "vectors_checked": 1000, "provenance": PROV},
    }))
    hw = load_hardware(timing_files=(rtl,) + DEFAULTS)
    spu = hw.units["pimba_spu"]
    assert spu.mode("state_update").comps_per_row_pair == 66
    assert spu.mode("state_update").source == str(rtl)
    assert spu.mode("score").comps_per_row_pair == 64            # from the defaults
    assert spu.mode("score").source.endswith("spu_timing_defaults.yaml")
    assert hw.units["timemux_fp16_naive"].mode("state_update").spu_cycles_per_comp == 4
    assert TIMING_FILES[0].parts[-3:] == ("build", "sim", "spu_timing.yaml")
    assert TIMING_FILES[1].parts[-3:] == ("sysmodel", "measured", "spu_timing.yaml")


def test_bad_timing_file_is_named(tmp_path):
    rtl = tmp_path / "spu_timing.yaml"
    rtl.write_text("score: {pipeline_depth: 0, spu_cycles_per_comp: 1, comps_per_row_pair: 64,"
                   " utilization: 1.0, vectors_checked: 1,\n"
                   " provenance: {simulator: t, seed: 1, git_revision: t, date: t}}\n")
    with pytest.raises(ConfigError, match=r"spu_timing.yaml: score.pipeline_depth"):
        load_hardware(timing_files=(rtl,) + DEFAULTS)


def test_cli_errors_exit_nonzero_with_one_line(capsys):
    assert main(["run", "--model", "gpt-5", "--system", "Pimba"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown model 'gpt-5' (allowed: retnet-2.7b")
    assert "\n" not in err
    assert main(["run", "--model", "opt-7b", "--system", "TPU"]) == 2
    assert "unknown system 'TPU'" in capsys.readouterr().err
    assert main(["sweep", "--figure", "7", "--out", "unused"]) == 2
    assert "allowed: 3, 5, 12, 13, 14, 16" in capsys.readouterr().err


def test_fused_pimba_takes_its_own_measured_timing():
    """The PIM unit ``pimba_spu_fused`` reads the fused SPU's measurement (mapping
    ``spu_mx8_fused`` of the RTL timing file, sysmodel.measured.spu_variant); a Pimba system
    with it gets its throughput from that timing (a shorter state-update drain, a longer
    attend fold)."""
    from dataclasses import replace

    from sysmodel.hardware import SPU_VARIANT_UNITS
    from sysmodel.measured import COMMITTED_TIMING, read_timing, spu_variant
    from sysmodel.system import Point, evaluate

    hw = load_hardware(timing_files=(COMMITTED_TIMING,) + DEFAULTS)
    variant = spu_variant(fused=True)
    fused, spu = hw.units["pimba_spu_fused"], hw.units["pimba_spu"]
    assert fused.timing_unit == SPU_VARIANT_UNITS[variant]
    measured = read_timing(COMMITTED_TIMING)[variant]
    for mode, tm in fused.timing:
        assert tm.pipeline_depth == measured[mode]["pipeline_depth"]
        assert tm.source == str(COMMITTED_TIMING) and tm.vectors_checked > 0
    assert fused.mode("state_update").pipeline_depth < spu.mode("state_update").pipeline_depth
    assert hw.system("Pimba (fused)").pim_unit.key == "pimba_spu_fused"
    system = replace(hw.systems["Pimba"], name="Pimba fused", pim_unit=fused)
    hw2 = replace(hw, systems={**hw.systems, "Pimba fused": system})
    base = evaluate(Point("mamba2-2.7b", "Pimba"), hw2).tokens_per_s
    got = evaluate(Point("mamba2-2.7b", "Pimba fused"), hw2).tokens_per_s
    assert got > base
    # attend through the fused unit folds 3 partials (a longer drain): a transformer is slower
    assert fused.mode("attend").pipeline_depth > spu.mode("attend").pipeline_depth
    assert (evaluate(Point("opt-7b", "Pimba fused"), hw2).tokens_per_s
            < evaluate(Point("opt-7b", "Pimba"), hw2).tokens_per_s)
    # the same unit with the unfused SPU's timing gives Pimba's throughput exactly
    same = replace(hw.systems["Pimba"], name="Pimba same",
                   pim_unit=replace(fused, timing=spu.timing))
    hw3 = replace(hw, systems={**hw.systems, "Pimba same": same})
    assert evaluate(Point("mamba2-2.7b", "Pimba same"), hw3).tokens_per_s == base
