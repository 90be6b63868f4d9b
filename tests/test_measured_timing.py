"""sysmodel/measured: the measured timing's format, its one reader and its writers."""

import pytest
import yaml

from quant.constants import MODES, TIMING_KEYS
from sysmodel.measured import (COMMITTED_TIMING, PROVENANCE_KEYS, SPU_VARIANTS, TimingFileError,
                               provenance, read_timing, spu_variant, write_pcu_timing,
                               write_timing, write_unit_timing)

SPU = {"pipeline_depth": 12, "spu_cycles_per_comp": 1, "comps_per_row_pair": 64,
       "utilization": 1.0, "vectors_checked": 8}
PROV = {"simulator": "Icarus Verilog", "seed": 3, "git_revision": "abc", "date": "2026-01-01"}


def test_committed_measurement_has_provenance_and_writeback_delay():
    data = read_timing(COMMITTED_TIMING)
    assert all(m in data for m in MODES)
    assert data["state_update"]["writeback_delay"] % 2 == 1           # odd: docs/spu.md
    # the fused SPU (its own mode entries, each with its provenance)
    fused = data[spu_variant(fused=True)]
    assert tuple(fused) == MODES and fused["state_update"]["writeback_delay"] % 2 == 1
    entries = [e for k, v in data.items() for e in (v.values() if k in SPU_VARIANTS else [v])]
    for entry in entries:
        assert set(entry["provenance"]) == set(PROVENANCE_KEYS)
        assert entry["provenance"]["git_revision"] != "unknown"


def test_writers_merge_and_record_provenance(tmp_path):
    path = tmp_path / "t.yaml"
    write_timing("state_update", SPU, path, writeback_delay=9, prov=PROV)
    write_timing("score", dict(SPU, pipeline_depth=5), path)          # provenance made now
    write_unit_timing("timemux_fp16_naive", {
        "cycles_per_subchunk": 8, "values_per_subchunk": 16, "banks_per_unit": 2,
        "comps_per_row_pair": 64, "pipeline_depth": 8, "utilization": 0.125,
        "vectors_checked": 4}, path, prov=PROV)
    pcu = {"banks_per_unit": 2, "lanes": 16, **{m: {"commands_per_column": 1,
                                                     "pipeline_depth": 1,
                                                     "vectors_checked": 2} for m in MODES}}
    write_pcu_timing("hbmpim_pcu", pcu, path, prov=PROV)
    data = read_timing(path)
    assert list(data) == ["state_update", "score", "timemux_fp16_naive", "hbmpim_pcu"]
    assert data["state_update"]["writeback_delay"] == 9
    assert data["state_update"]["provenance"] == PROV
    assert set(data["score"]["provenance"]) == set(PROVENANCE_KEYS)
    assert {k: data["score"][k] for k in TIMING_KEYS} == dict(SPU, pipeline_depth=5)
    # data, not comments: the file parses back to the same mapping with plain YAML
    assert yaml.safe_load(path.read_text()) == data


def test_variant_writer_merges_mode_by_mode(tmp_path):
    path = tmp_path / "t.yaml"
    variant = spu_variant(fused=True)
    assert variant in SPU_VARIANTS and spu_variant(fused=False) is None
    write_timing("attend", dict(SPU, pipeline_depth=14), path, prov=PROV, variant=variant)
    write_timing("state_update", SPU, path, writeback_delay=9, prov=PROV)
    write_timing("state_update", dict(SPU, pipeline_depth=10), path, writeback_delay=7,
                 prov=PROV, variant=variant)
    data = read_timing(path)
    assert list(data) == ["state_update", variant]          # the file's order
    assert list(data[variant]) == ["state_update", "attend"]  # modes in MODES order
    assert data[variant]["state_update"]["writeback_delay"] == 7
    assert data[variant]["attend"]["pipeline_depth"] == 14
    assert data["state_update"]["pipeline_depth"] == 12
    with pytest.raises(ValueError, match="variant must be one of"):
        write_timing("score", SPU, path, prov=PROV, variant="spu_mx9")


def test_provenance_names_the_run(monkeypatch):
    monkeypatch.setenv("COCOTB_RANDOM_SEED", "42")
    monkeypatch.setenv("SIM", "verilator")
    prov = provenance()
    assert prov["seed"] == 42 and prov["simulator"] == "verilator"
    assert set(prov) == set(PROVENANCE_KEYS)


@pytest.mark.parametrize("text, where", [
    ("score: {pipeline_depth: 5, spu_cycles_per_comp: 1, comps_per_row_pair: 64, "
     "utilization: 1.0, vectors_checked: 1}\n", "score.provenance: missing key"),
    ("scores: {}\n", "scores: unknown key"),
    ("score: [1]\n", "score: must be a mapping"),
    ("spu_mx8_fused: {decode: {}}\n", "spu_mx8_fused.decode: unknown key"),
    ("spu_mx8_fused: {score: {pipeline_depth: 5, spu_cycles_per_comp: 1, comps_per_row_pair: "
     "64, utilization: 1.0, vectors_checked: 1}}\n",
     "spu_mx8_fused.score.provenance: missing key"),
])
def test_bad_files_are_named(tmp_path, text, where):
    path = tmp_path / "t.yaml"
    path.write_text(text)
    with pytest.raises(TimingFileError, match=where) as info:
        read_timing(path)
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


def test_bad_entries_are_refused(tmp_path):
    with pytest.raises(ValueError, match="mode must be one of"):
        write_timing("decode", SPU, tmp_path / "t.yaml", prov=PROV)
    with pytest.raises(ValueError, match="lacks utilization"):
        write_timing("score", {k: v for k, v in SPU.items() if k != "utilization"},
                     tmp_path / "t.yaml", prov=PROV)
    with pytest.raises(ValueError, match="writeback_delay belongs to state_update"):
        write_timing("score", SPU, tmp_path / "t.yaml", writeback_delay=9, prov=PROV)
    assert not (tmp_path / "t.yaml").exists()
