"""No flip-flop of the SPU's top level drives a multiplexer of every operand bit.

ABC does not buffer flip-flop outputs, so a select register driving ~1000 multiplexer inputs
was 16 ns of the SPU's critical path (docs/spu.md §7, "Timing"); ``hw/spu.py`` copies those
registers, each copy driving one slice. This checks, on the netlist Yosys builds before
technology mapping, that the copies survive (Yosys merges identical flip-flops) and that no
top-level flip-flop output has more loads than a slice gives it.
"""

from __future__ import annotations

import collections
import json
import re
import subprocess

import pytest

from hw.export import export_unit
from synth.flow import find_yosys

#: Loads allowed on one top-level flip-flop output (a select copy drives 3 x 16 bits + a few).
MAX_LOADS = 64
#: The two response registers of a RESULT_READ select the 256-bit read data on a short path to
#: the output (docs/spu.md §7): allowed their full fanout.
EXEMPT = {"r_att", "r_bank"}


def _rank(name: str) -> tuple[bool, int]:
    return (not name.startswith("$"), len(name))


def _ff_loads(netlist: dict) -> dict[str, int]:
    """Loads (cell input pins) on each flip-flop output bit of the flattened top module,
    keyed by the name of the signal it drives (``name[bit]``)."""
    mod = netlist["modules"]["spu_mx8"]
    names = {}
    for name, net in mod["netnames"].items():
        for i, bit in enumerate(net["bits"]):
            # the most specific public name: a layout field's (f_stage.bank_c[3]) over the
            # whole register's (f_stage)
            if isinstance(bit, int) and (bit not in names or _rank(name) > _rank(names[bit])):
                names[bit] = f"{name}[{i}]"
    loads = collections.Counter()
    q_bits = set()
    for cell in mod["cells"].values():
        is_ff = "DFF" in cell["type"].upper()
        for port, bits in cell["connections"].items():
            for bit in bits:
                if not isinstance(bit, int):
                    continue
                if cell["port_directions"][port] == "input":
                    loads[bit] += 1
                elif is_ff and port == "Q":
                    q_bits.add(bit)
    return {names.get(b, str(b)): loads[b] for b in q_bits}


@pytest.mark.slow
def test_spu_top_level_flip_flop_fanout(tmp_path):
    export_unit("spu_mx8", tmp_path)
    yosys, _ = find_yosys()
    out = subprocess.run(yosys + ["-q", "-p", "read_verilog -sv spu_mx8.v; synth -flatten "
                                  "-noabc -top spu_mx8; opt_clean -purge; write_json n.json"],
                         cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    loads = _ff_loads(json.loads((tmp_path / "n.json").read_text()))
    # the top level's flip-flops: not inside a submodule (a dot in a top-level name separates
    # a stage register's layout fields, hw/spu_stages.py)
    subs = set(re.findall(r"^module \\spu_mx8\.(\w+)", (tmp_path / "spu_mx8.v").read_text(),
                          re.M))
    assert {"mul_decay", "mul_outer", "add", "dot"} <= subs
    top = {n: c for n, c in loads.items() if n.split("[")[0].split(".")[0] not in subs}
    # the copies exist in the netlist (copy 0 is the original register)
    for prefix in ("rd_bank_c", "f_stage.bank_c", "fold_it_c", "m_stage0.bank_c"):
        assert sum(n.startswith(prefix) for n in top) >= 15, prefix
    worst = {n: c for n, c in top.items()
             if c > MAX_LOADS and n.split("[")[0] not in EXEMPT}
    assert not worst, worst
