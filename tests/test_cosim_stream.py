"""The co-simulation's bulk machinery without a simulator: stream plans and their comparison
(cosim/stream.py), record-and-replay of the reactive benches (cosim/replay.py), and the
``python -m cosim`` benchmark file."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

import numpy as np
import pytest

from cosim.replay import Diverged, RecordingIo, ReplayIo
from cosim.stream import StreamPlan, compare, gaps, junk_pool, stimulus_digest


def _plan(n=5, latency=3) -> StreamPlan:
    widths = {"a": 8, "y": 16}
    g = gaps(np.random.default_rng(1), n, 0.5)
    junk, pick = junk_pool(np.random.default_rng(2), widths, ("a",), int(g.sum()))
    return StreamPlan(inputs={"a": list(range(n))}, outputs={"y": [3 * i for i in range(n)]},
                      widths=widths, latency=latency, gaps=g, junk=junk, junk_pick=pick)


def test_compare_checks_every_word_and_cycle():
    plan = _plan()
    ins = [10 * i for i in range(5)]
    outs = [c + 3 for c in ins]
    assert compare(plan, {"y": [0, 3, 6, 9, 12]}, ins, outs) == []
    bad = compare(plan, {"y": [0, 3, 7, 9, 12]}, ins, outs)
    assert [(m.index, m.reason) for m in bad] == [(2, "value")]
    assert "xor 0x1" in str(bad[0])
    late = compare(plan, {"y": [0, 3, 6, 9, 12]}, ins, outs[:4] + [outs[4] + 1])
    assert [(m.index, m.reason) for m in late] == [(4, "latency 4 cycles, expected 3")]
    assert [m.reason for m in compare(plan, {"y": [0, 3, 6]})] == ["missing output"] * 2
    extra = compare(plan, {"y": [0, 3, 6, 9, 12, 99]})
    assert [(m.index, m.reason) for m in extra] == [(5, "unexpected output")]
    xz = compare(plan, {"y": [0, 3, "x" * 16, 9, 12]})
    assert xz[0].index == 2 and "while valid is high" in xz[0].reason


def test_plan_validates_lengths_and_gaps():
    with pytest.raises(ValueError, match="COSIM_IDLE"):
        gaps(np.random.default_rng(0), 3, 1.0)
    assert gaps(np.random.default_rng(0), 4, 0.0).tolist() == [0, 0, 0, 0]
    g = gaps(np.random.default_rng(0), 20000, 0.25)
    assert abs(g.mean() - 1 / 3) < 0.03  # geometric: mean idle/(1-idle)
    plan = _plan()
    with pytest.raises(ValueError, match="output port 'y' has 4 words"):
        StreamPlan(inputs=plan.inputs, outputs={"y": plan.outputs["y"][:4]},
                   widths=plan.widths, latency=3, gaps=plan.gaps, junk=plan.junk,
                   junk_pick=plan.junk_pick)


def test_stimulus_digest_sees_every_driven_bit():
    a, b = _plan(), _plan()
    assert stimulus_digest(a) == stimulus_digest(b)
    b.inputs["a"][3] ^= 1
    assert stimulus_digest(a) != stimulus_digest(b)
    c = _plan()
    c.junk["a"][0] ^= 0x80
    assert stimulus_digest(a) != stimulus_digest(c)


@dataclass
class _Sample:
    x: int
    rows: tuple | None = None


class _Io:
    def __init__(self):
        self.n = 0

    async def cycle(self, cmd, addr, data, act, rows, read_rows):
        self.n += 1
        return _Sample(cmd + addr)


def test_replay_hands_back_samples_and_catches_divergence():
    async def drive(io, addrs):
        return [(await io.cycle(1, a, 0, 0, None, False)).x for a in addrs]

    rec = RecordingIo(_Io())
    assert asyncio.run(drive(rec, [1, 2, 3])) == [2, 3, 4]
    assert asyncio.run(drive(ReplayIo(rec.cycles), [1, 2, 3])) == [2, 3, 4]
    with pytest.raises(Diverged, match="cycle 1: the bench drives another addr"):
        asyncio.run(drive(ReplayIo(rec.cycles), [1, 5, 3]))
    with pytest.raises(Diverged, match="recorded run ended"):
        asyncio.run(drive(ReplayIo(rec.cycles), [1, 2, 3, 4]))


def test_cosim_cli_writes_the_benchmark(tmp_path, capsys):
    """``python -m cosim`` on one small bench: a PASS line, and build/bench/cosim.json with
    the bench's vectors, cycles, wall time and cycles/s and the run's total wall time."""
    from cosim.__main__ import main

    out = tmp_path / "cosim.json"
    rc = main(["--tb", "lfsr", "--sim", "icarus", "--vectors", "64", "--seed", "7", "--jobs",
               "1", "--bench-out", str(out)])
    assert rc == 0, capsys.readouterr().out
    data = json.loads(out.read_text())
    rec = data["benches"]["lfsr_icarus"]
    assert rec["vectors"] == 64 and rec["cycles"] == 64 and rec["passed"] is True
    assert rec["cycles_per_s"] > 0 and rec["sim_wall_s"] > 0
    assert data["seed"] == 7 and data["total_wall_s"] > 0 and data["jobs"] == 1
    assert data["exports"]["lfsr_icarus"] >= 0 and "lfsr_icarus" in data["builds"]


def test_reference_mutants_are_checked_shortest_trace_first(tmp_path):
    """The offline mutant checks of ``python -m cosim`` take a testbench's golden traces
    shortest first (the Icarus smoke run before Verilator's full one), never a mutant run's,
    and go on to the next trace only while the mutant is not exposed."""
    from cosim.__main__ import _traces_per_bench, offline_job
    from cosim.stream import save_trace

    runs = [
        {"tb": "mx_mul", "sim": "verilator", "vectors": 100_000, "expect_pass": True,
         "trace": "v.npz"},
        {"tb": "mx_mul", "sim": "icarus", "vectors": 3000, "expect_pass": True,
         "trace": "i.npz"},
        {"tb": "mx_mul", "sim": "icarus", "vectors": 10, "expect_pass": False,
         "trace": "m.npz"},
        {"tb": "spu_score", "sim": "icarus", "vectors": 512, "expect_pass": True,
         "trace": None},
        {"tb": "spu_score", "sim": "verilator", "vectors": 10_240, "expect_pass": True,
         "trace": "s.pkl"},
    ]
    per = _traces_per_bench(runs)
    assert {tb: [r["trace"] for r in rs] for tb, rs in per.items()} == {
        "mx_mul": ["i.npz", "v.npz"], "spu_score": ["s.pkl"]}

    # the example MAC: a trace whose responses equal the golden expectations exposes no
    # mutant; the next one (recorded from the real unit) does
    import tests.example_mac  # noqa: F401  (registers the unit)
    from cosim.stream import make_plan
    from tests.tb_example_mac import MUTANTS

    plan, meta = make_plan("tests.tb_example_mac:plan", "example_mac", 50, 9, idle=0.2)
    golden = tmp_path / "golden.npz"
    save_trace(golden, planner_name=meta["planner"], unit="example_mac", vectors=50, seed=9,
               idle=0.2, plan=plan, received=plan.outputs)
    mutant = MUTANTS[0]
    mplan, _ = make_plan("tests.tb_example_mac:plan", "example_mac", 50, 9, idle=0.2,
                         mutant=mutant)
    fooled = tmp_path / "fooled.npz"  # responses that agree with the mutant
    save_trace(fooled, planner_name=meta["planner"], unit="example_mac", vectors=50, seed=9,
               idle=0.2, plan=plan, received=mplan.outputs)
    caught = offline_job(([("a", str(fooled)), ("b", str(golden))], mutant))
    assert caught["ok"] and caught["run"] == "b" and caught["mismatches"] > 0
    missed = offline_job(([("a", str(fooled))], mutant))
    assert not missed["ok"] and missed["mismatches"] == 0


def test_plan_file_round_trip(tmp_path):
    """A plan written for the simulator side comes back word for word (the stimulus digest
    too), with its meta; nothing of it needs torch to load."""
    from cosim.stream import load_plan, save_plan

    plan = _plan(n=40)
    plan.info["coverage"] = {"class": 3}
    meta = {"planner": "m:plan", "unit": "u", "vectors": 40, "seed": 5, "idle": 0.5,
            "mutant": ""}
    save_plan(tmp_path / "plan.npz", plan, meta)
    back, meta2 = load_plan(tmp_path / "plan.npz")
    assert meta2 == meta and back.info == plan.info and back.latency == plan.latency
    assert back.inputs == plan.inputs and back.outputs == plan.outputs
    assert back.junk == plan.junk and (back.gaps == plan.gaps).all()
    assert stimulus_digest(back) == stimulus_digest(plan)


def test_stream_simulator_runs_without_torch(tmp_path, monkeypatch):
    """The runner plans a stream bench before it starts the simulator, so the simulator
    process does not import torch: here a ``torch`` that refuses to import comes first on the
    simulator's path, and the run still passes (every bit checked)."""
    import sys

    from cosim.runner import run_cosim

    fake = tmp_path / "fake"
    (fake / "torch").mkdir(parents=True)
    (fake / "torch" / "__init__.py").write_text(
        "raise ImportError('the simulator process imported torch')\n")
    monkeypatch.setenv("COSIM_OUT", str(tmp_path / "sim"))
    monkeypatch.setattr(sys, "path", [str(fake), *sys.path])
    r = run_cosim("mx_mul", "cosim.tb_mx", sim="icarus", vectors=40, seed=3, record=False)
    assert r.passed and r.vectors == 40 and r.mismatches == 0


def test_simulated_mutants_are_declared_mutants():
    """A testbench's ``simulated`` mutants (those no recorded run can replay) must be among
    its mutants: a typo is refused, not silently never run."""
    from cosim.benches import TESTBENCHES, Testbench

    with pytest.raises(ValueError, match="swap_bank"):
        Testbench("t", unit="u", module="m", mutants=("swap_banks",), simulated=("swap_bank",))
    assert TESTBENCHES["spu_score"].simulated == ("swap_banks",)


def test_cycle_cost_probe_writes_its_figures(tmp_path, monkeypatch):
    """``python -m cosim.probe``: the cost of an await and of port writes and reads, per
    simulator, in its JSON file; a repetition count of zero is refused."""
    from cosim.probe import main

    monkeypatch.setenv("COSIM_OUT", str(tmp_path / "sim"))
    out = tmp_path / "probe.json"
    assert main(["--sim", "icarus", "--repetitions", "100", "--out", str(out)]) == 0
    rec = json.loads(out.read_text())["simulators"]["icarus"]
    assert rec["repetitions"] == 100 and rec["width_i_a"] == 256
    assert all(rec[f"us_{k}"] > 0 for k in ("await_falling_edge", "write_wide", "read_wide"))
    with pytest.raises(SystemExit):
        main(["--repetitions", "0", "--out", str(out)])


def test_window_knob_refuses_bad_values(monkeypatch):
    """``COSIM_WINDOW``: an integer from 1 to 1024; 0, a negative or a typo is one clear
    error, unset is the simulator's default."""
    from cosim.stream import WINDOW, window_knob

    monkeypatch.delenv("COSIM_WINDOW", raising=False)
    assert window_knob("verilator") == WINDOW["verilator"] and window_knob("icarus") == 1
    for bad, msg in (("0", "out of range"), ("-4", "out of range"), ("16x", "not an integer"),
                     ("2000", "out of range")):
        monkeypatch.setenv("COSIM_WINDOW", bad)
        with pytest.raises(ValueError, match=f"COSIM_WINDOW.*{msg}"):
            window_knob("icarus")


def test_window_layout_must_cover_the_units_ports():
    """The wrapper drives every data input of the unit: a plan that leaves one out, names a
    port the unit lacks or disagrees on a width is refused."""
    from cosim.stream import load_unit, make_plan, window_layout, window_verilog

    plan, _ = make_plan("cosim.mx_bench:plan", "mx_add", 8, seed=1, idle=0.25)
    unit = load_unit("mx_add")
    layout = window_layout(unit, plan)
    assert [p for p, _ in layout["in"]] == ["a", "b", "stoch"]
    assert [p for p, _ in layout["out"]] == ["y"]
    text = window_verilog("mx_add", layout, 4)
    assert "module win4_mx_add(clk, rst, i_win, o_win);" in text
    assert f"input [{4 * (1 + 256 + 256 + 1) - 1}:0] i_win" in text
    assert f"output [{4 * (1 + 256) - 1}:0] o_win" in text
    stoch = plan.inputs.pop("stoch")
    with pytest.raises(ValueError, match=r"inputs not driven \['stoch'\]"):
        window_layout(unit, plan)
    plan.inputs["stoch"] = stoch
    plan.widths["y"] = 255
    with pytest.raises(ValueError, match="port 'y': the plan says 255 bits"):
        window_layout(unit, plan)
    with pytest.raises(ValueError, match="k >= 2"):
        window_verilog("mx_add", layout, 1)


@pytest.mark.parametrize("unit,sim,window", [("mx_add", "icarus", 5),
                                             ("mx_add", "verilator", 16),
                                             ("mx_add_mutant_align", "icarus", 5)])
def test_window_wrapper_plays_the_same_cycles(tmp_path, monkeypatch, unit, sim, window):
    """Through the window wrapper (several cycles per trigger) a run checks every bit and
    every output's cycle as one trigger per cycle does: the golden unit passes with the
    responses of the per-cycle run, bit for bit, and the RTL mutant is caught."""
    import contextlib

    from cosim.mutants import registered
    from cosim.runner import BUILD_ROOT, run_cosim
    from cosim.stream import load_trace, window_toplevel

    monkeypatch.setenv("COSIM_OUT", str(tmp_path / "sim"))
    runs = {}
    mutant = unit != "mx_add"
    with registered(unit, BUILD_ROOT / "verilog") if mutant else contextlib.nullcontext():
        for k in (1, window):
            monkeypatch.setenv("COSIM_WINDOW", str(k))
            runs[k] = run_cosim(unit, "cosim.tb_mx", name=f"w{k}", sim=sim, vectors=60,
                                seed=11, record=False, check=False)
            assert runs[k].benches[unit]["window"] == k
    if mutant:
        (BUILD_ROOT / "verilog" / "window" / f"{window_toplevel(unit, window)}.v").unlink(
            missing_ok=True)
    if unit == "mx_add":
        assert runs[1].passed and runs[window].passed and runs[window].mismatches == 0
        t1, tk = (load_trace(runs[k].trace) for k in (1, window))
        assert t1[0]["digest"] == tk[0]["digest"]
        assert t1[1] == tk[1] and len(t1[1]["y"]) == 60
    else:
        assert not runs[1].passed and not runs[window].passed
        assert runs[window].mismatches == runs[1].mismatches > 0
