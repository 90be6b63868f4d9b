"""The SPU's view of a DRAM bank (:data:`bank_port`) and a simulation model of one bank's row
buffer (:class:`BankModel`) that checks the one-access-per-cycle rule.

A bank's open row is 32 columns of 256 bits (1 KB, one *chunk*). In every SPU cycle the SPU may
make one column access per bank: a read (``rd``, ``rd_col``; the data is on ``rdata`` in the
same cycle and the SPU registers it: the *fetch* stage) or a write (``wr``, ``wr_col``,
``wdata``; the row buffer takes it at the end of the cycle). A read and a write of one bank in
one cycle is a *collision*: the row buffer cannot do both.

The model is not synthesised. It holds the open row in registers, loads a whole row on
``i_act`` (the testbench's ACTIVATE: the row comes from the testbench's DRAM array) and shows
it on ``o_row`` (the testbench reads it back at PRECHARGE). A collision is reported on
``o_collision`` in the cycle it happens and counted in ``o_collisions`` (saturating); the read
of a colliding cycle returns the inverted column, so the corruption also reaches the data.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from quant.constants import COLUMN_BITS, COLUMNS

__all__ = ["COLUMNS", "COLUMN_BITS", "bank_port", "BankModel", "mux_tree",
           "attach_bank_models"]

# COLUMNS: columns (256-bit sub-chunks) per row, 1 KB rows (docs/design.md §4); COLUMN_BITS:
# bits per column (one MX8 sub-chunk: 32 values, two groups). Both from quant.constants.
_COL_ADDR_BITS = (COLUMNS - 1).bit_length()


def bank_port() -> wiring.Signature:
    """The column-access interface of one bank, as seen from the SPU (the SPU drives it).

    Members
    -------
    rd : Out(1)
        Read column ``rd_col`` this cycle.
    rd_col : Out(5)
    wr : Out(1)
        Write ``wdata`` to column ``wr_col`` this cycle.
    wr_col : Out(5)
    wdata : Out(256)
    rdata : In(256)
        The column addressed by ``rd_col`` (valid in the cycle of ``rd``).
    """
    return wiring.Signature({
        "rd": Out(1),
        "rd_col": Out(_COL_ADDR_BITS),
        "wr": Out(1),
        "wr_col": Out(_COL_ADDR_BITS),
        "wdata": Out(COLUMN_BITS),
        "rdata": In(COLUMN_BITS),
    })


def mux_tree(values, index):
    """``values[index]`` as a balanced tree of 2:1 multiplexers (continuous assignments in
    the Verilog; a ``case`` in an ``always @*`` block, as ``Array`` indexing gives, is not
    evaluated by Icarus until one of its inputs changes)."""
    values = list(values)
    for bit in range(len(index)):
        if len(values) == 1:
            break
        values = [Mux(index[bit], values[i + 1], values[i]) if i + 1 < len(values) else
                  values[i] for i in range(0, len(values), 2)]
    return values[0]


class BankModel(wiring.Component):
    """Row buffer of one bank with one column access per cycle (simulation model).

    Members
    -------
    port : In(bank_port())
        The column accesses of the SPU.
    i_act : In(1)
        Load the whole row buffer from ``i_row`` at the end of this cycle (ACTIVATE).
    i_row : In(ArrayLayout(256, 32))
        The row to activate.
    o_row : Out(ArrayLayout(256, 32))
        The row buffer (what PRECHARGE writes back to the array).
    o_collision : Out(1)
        A read and a write of this bank in this cycle (or a column access during ``i_act``).
    o_collisions : Out(16)
        Collisions since reset (saturating).
    """

    def __init__(self):
        row = data.ArrayLayout(COLUMN_BITS, COLUMNS)
        super().__init__({
            "port": In(bank_port()),
            "i_act": In(1),
            "i_row": In(row),
            "o_row": Out(row),
            "o_collision": Out(1),
            "o_collisions": Out(16),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.port
        cols = [Signal(COLUMN_BITS, name=f"col{c}") for c in range(COLUMNS)]
        m.d.comb += self.o_row.as_value().eq(Cat(*cols))
        access = p.rd | p.wr
        m.d.comb += self.o_collision.eq((p.rd & p.wr) | (self.i_act & access))
        word = mux_tree(cols, p.rd_col)
        m.d.comb += p.rdata.eq(Mux(self.o_collision, ~word, word))
        with m.If(self.o_collision & ~self.o_collisions.all()):
            m.d.sync += self.o_collisions.eq(self.o_collisions + 1)
        with m.If(self.i_act):
            m.d.sync += [cols[c].eq(self.i_row[c]) for c in range(COLUMNS)]
        with m.Elif(p.wr):
            for c in range(COLUMNS):
                with m.If(p.wr_col == c):
                    m.d.sync += cols[c].eq(p.wdata)
        return m


def attach_bank_models(m, sim, unit, names: str = "ab") -> list:
    """Give each bank port of ``unit`` a :class:`BankModel` (submodule ``bank_<name>``),
    driven by the sim wrapper ``sim``'s ``i_act[b]`` and ``i_row_<name>`` and read back on
    its ``o_row_<name>``; return the models (their collision flags are the wrapper's)."""
    banks = [BankModel() for _ in range(unit.banks)]
    for b, bank in enumerate(banks):
        m.submodules[f"bank_{names[b]}"] = bank
        wiring.connect(m, unit.bank[b], bank.port)
        m.d.comb += [
            bank.i_act.eq(sim.i_act[b]),
            bank.i_row.eq(getattr(sim, f"i_row_{names[b]}")),
            getattr(sim, f"o_row_{names[b]}").eq(bank.o_row),
        ]
    return banks
