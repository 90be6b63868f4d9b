"""The sequential equivalence check (synth/equiv.py): a pipeline whose registers move into one
layout is proven equivalent, a changed one is not, and the SPU's stage layouts
(hw/spu_stages.py) are proven equivalent to the separate signals they replaced."""

import subprocess

import pytest
from amaranth.back import verilog
from amaranth.hdl import Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from synth.equiv import ROOT, check_equiv, nonzero_inits, prove, read_renames
from synth.flow import FlowError

TAG = data.StructLayout({"valid": 1, "col": 5})
STAGE = data.StructLayout({"tag": TAG, "data": 16, "col_c": data.ArrayLayout(5, 2)})


class Pipe(wiring.Component):
    """Two enable-held stages carrying a tag and a word; ``packed`` puts each stage's
    registers in one :data:`STAGE` view (the gate), else separate signals (the gold);
    ``bug`` changes what the second stage loads."""

    i_en: In(1)
    i_valid: In(1)
    i_col: In(5)
    i_data: In(16)
    o_valid: Out(1)
    o_y: Out(16)
    o_col: Out(5)

    def __init__(self, packed: bool, bug: bool = False, init: int = 0):
        self.packed, self.bug, self.init = packed, bug, init
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        count = Signal(4, init=self.init)       # a register of the same name on both sides
        m.d.sync += count.eq(count + self.i_en)
        regs = []
        for i in range(2):
            if self.packed:
                s = Signal(STAGE, name=f"s{i}")
                regs.append((s.tag, s.data, s.col_c[1]))
            else:
                regs.append((Signal(TAG, name=f"tag{i}"), Signal(16, name=f"data{i}"),
                             Signal(5, name=f"col{i}_c1")))
        (t0, d0, c0), (t1, d1, c1) = regs
        with m.If(self.i_en):
            m.d.sync += [t0.valid.eq(self.i_valid), t0.col.eq(self.i_col),
                         d0.eq(self.i_data + count), c0.eq(self.i_col),
                         t1.eq(t0), c1.eq(c0),
                         d1.eq((d0 ^ 1) if self.bug else d0)]
        m.d.comb += [self.o_valid.eq(t1.valid), self.o_y.eq(d1 + c1), self.o_col.eq(t1.col)]
        return m


RENAMES = [(f"s{i}.tag", f"tag{i}") for i in range(2)] + \
    [(f"s{i}.data", f"data{i}") for i in range(2)] + \
    [(f"s{i}.col_c[1]", f"col{i}_c1") for i in range(2)]


def _prove(tmp_path, gate: Pipe, renames=RENAMES, gold: Pipe | None = None):
    gold_v, gate_v = tmp_path / "gold.v", tmp_path / "gate.v"
    gold_v.write_text(verilog.convert(gold or Pipe(packed=False), name="pipe", emit_src=False))
    gate_v.write_text(verilog.convert(gate, name="pipe", emit_src=False))
    return prove(gold_v, gate_v, "pipe", renames=renames, work=tmp_path / "work")


def test_registers_packed_into_a_layout_are_proven_equivalent(tmp_path):
    proven, cells, _, _, error = _prove(tmp_path, Pipe(packed=True))
    assert proven and cells > 0 and error is None


def test_a_changed_stage_is_not_proven(tmp_path):
    proven, _, _, log, error = _prove(tmp_path, Pipe(packed=True, bug=True))
    assert not proven and error is not None and "unproven" in error
    assert "unproven" in log.read_text()


def test_without_the_renames_the_packed_registers_are_not_matched(tmp_path):
    proven, _, _, _, _ = _prove(tmp_path, Pipe(packed=True), renames=[])
    assert not proven


def test_a_rename_of_a_wire_that_is_not_there_stops_with_its_name(tmp_path):
    proven, _, _, _, error = _prove(tmp_path, Pipe(packed=True),
                                    renames=RENAMES + [("s9.tag", "tag9")])
    assert not proven and error == "ERROR: Object `s9.tag' not found!"


def test_different_start_states_are_refused(tmp_path):
    with pytest.raises(FlowError, match="non-zero initial value differ"):
        _prove(tmp_path, Pipe(packed=True, init=3))


def test_nonzero_inits_and_rename_files(tmp_path):
    text = verilog.convert(Pipe(packed=False, init=5), name="pipe", emit_src=False)
    assert nonzero_inits(text) == {("pipe", "count"): 5}
    f = tmp_path / "r.txt"
    f.write_text("# comment\ns0.tag=tag0  # trailing\n\n")
    assert read_renames(f) == [("s0.tag", "tag0")]
    f.write_text("s0.tag\n")
    with pytest.raises(FlowError, match=r"r.txt:1: --rename takes GATE_WIRE=GOLD_WIRE"):
        read_renames(f)


#: The revision before the SPU's stage registers became layouts.
BEFORE_STAGE_LAYOUTS = "c53c03f"


@pytest.mark.slow
def test_spu_stage_layouts_equivalent_to_the_separate_signals(tmp_path):
    """hw/spu.py's stage registers as layouts (hw/spu_stages.py) against the separate signals
    of revision ``c53c03f``: a Yosys proof over the whole flattened SPU (a few minutes)."""
    have = subprocess.run(["git", "cat-file", "-e", f"{BEFORE_STAGE_LAYOUTS}^{{commit}}"],
                          cwd=ROOT, capture_output=True)
    if have.returncode != 0:
        pytest.skip(f"revision {BEFORE_STAGE_LAYOUTS} not in this clone")
    res = check_equiv("spu_mx8", BEFORE_STAGE_LAYOUTS, out_dir=tmp_path,
                      renames=read_renames(ROOT / "synth/renames/spu_stage_layouts.txt"))
    assert res.proven and not res.identical and res.equiv_cells > 1000, res.line()
