"""Streaming benches as data: a precomputed stimulus plan, recorded responses, bulk comparison.

A *streaming* unit (the MX8 arithmetic units, the SPE slices, the harness's example MAC) takes
one operation per cycle while ``i_valid`` is high and answers, in order, exactly ``latency``
cycles later with ``o_valid`` high. Its bench needs no Python in the loop beyond writing and
reading ports, so everything else happens in bulk, outside the simulated cycles:

1. :class:`StreamPlan` — built by a bench's *planner* ``plan(unit, vectors, seed, mutant)``
   from one seed: the input words of every operation (one list per port), the idle gaps
   before each one, the junk driven on idle data ports, and the expected output words from
   batched golden-model calls. A planner is a pure function of its arguments.
2. The simulator side (:func:`cosim.tb.play_stream`) drives the plan with one trigger per
   cycle (the falling edge) and records every valid output word and its cycle.
3. :func:`compare` checks every bit of every output and every output's cycle against the
   plan, and reports the first mismatches with their vector index.

The recorded responses are saved next to the run's counters (:func:`save_trace`, an ``.npz``
file). A *reference mutant* (a deliberately wrong expectation, the same stimulus) is then
checked offline by :func:`check_mutant`: the planner rebuilds the plan from the recorded seed
with the mutant's expectations; the stimulus must hash to the recorded one, and the mutant's
expectations must disagree with the recorded responses. One simulation proves that the
scoreboard catches every reference mutant.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Mismatch", "Port", "StreamPlan", "check_mutant", "compare", "default_vectors", "gaps",
           "idle_knob", "junk_pool", "load_plan", "load_trace", "load_unit", "make_plan",
           "plan_seed", "planner", "port_widths", "save_plan", "save_trace",
           "stimulus_digest", "stream_window", "unit_ports", "WINDOW", "window_knob", "window_layout", "window_toplevel",
           "window_verilog", "write_window"]

#: Junk words per idle data port (drawn once; idle cycles pick from them).
JUNK = 64


@dataclass
class StreamPlan:
    """Everything a streaming bench drives and expects, computed before the first cycle.

    ``inputs`` maps a data port's name without its ``i_`` prefix to one word per operation;
    ``outputs`` maps an output port's name without ``o_`` to the expected word per
    operation; ``widths`` holds each port's width in bits. ``gaps[i]`` idle cycles precede
    operation ``i``; on an idle cycle data port ``p`` carries ``junk[p][junk_pick[c]]`` (``c``
    counting idle cycles). ``batches`` are the stimulus batches as the vector generators
    returned them (for class counts); ``info`` goes into the run's log and counters.
    """
    inputs: dict[str, list[int]]
    outputs: dict[str, list[int]]
    widths: dict[str, int]
    latency: int
    gaps: np.ndarray
    junk: dict[str, list[int]]
    junk_pick: np.ndarray
    batches: list[Any] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        n = self.vectors
        for kind, words in (("input", self.inputs), ("output", self.outputs)):
            for port, w in words.items():
                if len(w) != n:
                    raise ValueError(f"{kind} port {port!r} has {len(w)} words, not {n}")
        if len(self.gaps) != n:
            raise ValueError(f"{len(self.gaps)} gaps for {n} operations")

    @property
    def vectors(self) -> int:
        return len(next(iter(self.inputs.values())))

    @property
    def cycles(self) -> int:
        """Cycles from the first driven operation to the last expected output."""
        return int(self.gaps.sum()) + self.vectors + self.latency


@dataclass(frozen=True)
class Port:
    """A data port of the unit (``i_valid``/``o_valid``/``clk``/``rst`` are handled apart)."""
    name: str
    width: int


def unit_ports(component) -> tuple[list[Port], list[Port]]:
    """Input and output data ports of an Amaranth component (flat ports only)."""
    from amaranth.hdl import Shape
    from amaranth.lib import wiring

    ins, outs = [], []
    for name, member in component.signature.members.items():
        if not member.is_port:
            raise ValueError(f"port {name!r} of {type(component).__name__} is not flat; the "
                             "generated wrappers handle flat ports only")
        width = Shape.cast(member.shape).width
        if name in ("i_valid", "o_valid"):
            if width != 1:
                raise ValueError(f"{name} must be 1 bit, not {width}")
            continue
        (ins if member.flow == wiring.In else outs).append(Port(name, width))
    return ins, outs


def gaps(rng: np.random.Generator, n: int, idle_prob: float) -> np.ndarray:
    """Idle cycles before each of ``n`` operations: geometric, ``P(gap >= k) = idle**k``."""
    if not 0.0 <= idle_prob < 1.0:
        raise ValueError(f"COSIM_IDLE={idle_prob}: out of range (allowed: 0 <= p < 1)")
    if idle_prob == 0.0:
        return np.zeros(n, dtype=np.int64)
    return rng.geometric(1.0 - idle_prob, size=n).astype(np.int64) - 1


def junk_pool(rng: np.random.Generator, widths: Mapping[str, int], ports: Sequence[str],
              idle_cycles: int) -> tuple[dict[str, list[int]], np.ndarray]:
    """Random words for the idle data ports and which one each idle cycle drives."""
    junk = {p: [int.from_bytes(rng.bytes((widths[p] + 7) // 8), "little")
                & ((1 << widths[p]) - 1) for _ in range(JUNK)] for p in ports}
    return junk, rng.integers(0, JUNK, size=max(idle_cycles, 1))


@dataclass(frozen=True)
class Mismatch:
    """A failed comparison: the operation's index, the port, what was expected and seen."""
    index: int
    port: str
    expected: int | None
    actual: int | str | None
    reason: str

    def __str__(self) -> str:
        if self.reason != "value":
            return f"vector {self.index}: {self.reason}"
        e, a = self.expected, self.actual
        return f"vector {self.index}: {self.port}: expected {e:#x}, got {a:#x} (xor {e ^ a:#x})"


def compare(plan: StreamPlan, received: Mapping[str, Sequence[int | str]],
            in_cycles: Sequence[int] | None = None, out_cycles: Sequence[int] | None = None,
            ) -> list[Mismatch]:
    """Every bit of every recorded output word against the plan, and (when the cycles are
    given) every output's cycle against its input's cycle plus the latency.

    ``received[port]`` holds the words seen with ``o_valid`` high, in order (a string is a
    value with X or Z bits). Missing and unexpected outputs are mismatches too.
    """
    out: list[Mismatch] = []
    n = plan.vectors
    for port, want in plan.outputs.items():
        got = received.get(port, [])
        for i, (e, a) in enumerate(zip(want, got)):
            if e != a:
                if isinstance(a, str):
                    out.append(Mismatch(i, port, e, a, f"{port} is {a} while valid is high"))
                else:
                    out.append(Mismatch(i, port, e, a, "value"))
        if len(got) < n:
            out.extend(Mismatch(i, port, want[i], None, "missing output")
                       for i in range(len(got), n))
        elif len(got) > n:
            out.extend(Mismatch(i, port, None, got[i], "unexpected output")
                       for i in range(n, len(got)))
    if in_cycles is not None and out_cycles is not None:
        m = min(len(in_cycles), len(out_cycles))
        lat = np.asarray(out_cycles[:m], dtype=np.int64) - np.asarray(in_cycles[:m],
                                                                       dtype=np.int64)
        for i in np.flatnonzero(lat != plan.latency)[:1000].tolist():
            out.append(Mismatch(i, "", None, None, f"latency {int(lat[i])} cycles, "
                                f"expected {plan.latency}"))
    out.sort(key=lambda x: x.index)
    return out


def port_widths(unit, in_ports, out_ports) -> dict[str, int]:
    """Widths of the data ports ``i_<p>``/``o_<p>`` from the unit's signature."""
    from amaranth.hdl import Shape

    members = unit.signature.members
    names = {p: f"i_{p}" for p in in_ports} | {p: f"o_{p}" for p in out_ports}
    return {p: Shape.cast(members[m].shape).width for p, m in names.items()}


def stimulus_digest(plan: StreamPlan) -> str:
    """SHA-256 of the driven stimulus (input words, gaps, junk), to prove that a replayed
    plan drives what the recorded run drove."""
    h = hashlib.sha256()
    for port in sorted(plan.inputs):
        nbytes = (plan.widths[port] + 7) // 8
        h.update(port.encode())
        h.update(b"".join(w.to_bytes(nbytes, "little") for w in plan.inputs[port]))
        h.update(b"".join(w.to_bytes(nbytes, "little") for w in plan.junk.get(port, [])))
    h.update(np.ascontiguousarray(plan.gaps, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(plan.junk_pick, dtype=np.int64).tobytes())
    return h.hexdigest()


def _to_bytes(words: Sequence[int], width: int) -> np.ndarray:
    nbytes = (width + 7) // 8
    buf = b"".join(w.to_bytes(nbytes, "little") for w in words)
    return np.frombuffer(buf, dtype=np.uint8).reshape(len(words), nbytes)


def _from_bytes(arr: np.ndarray) -> list[int]:
    return [int.from_bytes(row.tobytes(), "little") for row in arr]


def save_trace(path: str | Path, *, planner_name: str, unit: str, vectors: int, seed: int,
               idle: float, plan: StreamPlan, received: Mapping[str, Sequence[int]]) -> None:
    """Record a passing run: what replays its plan (planner, unit, vectors, seed, idle
    probability), the stimulus digest and every response word."""
    arrays = {f"out_{p}": _to_bytes(list(received[p]), plan.widths[p]) for p in plan.outputs}
    meta = {"planner": planner_name, "unit": unit, "vectors": vectors, "seed": seed,
            "idle": idle, "digest": stimulus_digest(plan)}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, meta=np.array(repr(meta)), **arrays)
    tmp.replace(path)


def load_trace(path: str | Path) -> tuple[dict[str, Any], dict[str, list[int]]]:
    """``(meta, responses)`` of a trace written by :func:`save_trace`."""
    import ast

    with np.load(path, allow_pickle=False) as z:
        meta = ast.literal_eval(str(z["meta"]))
        responses = {k[4:]: _from_bytes(z[k]) for k in z.files if k.startswith("out_")}
    return meta, responses


def plan_seed(seed: int, test_module: str) -> int:
    """The seed of a stream plan, from a run's seed (``COCOTB_RANDOM_SEED``) and the bench's
    test module: deterministic, so a run replays from its logged seed."""
    return random.Random(f"{test_module}:{int(seed)}").getrandbits(63)


def idle_knob() -> float:
    """``COSIM_IDLE`` (probability of an idle cycle), 0.25 when unset or empty."""
    raw = os.environ.get("COSIM_IDLE", "").strip()
    if not raw:
        return 0.25
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"COSIM_IDLE={raw!r}: not a number (allowed: 0 <= p < 1)") from None


#: Cycles per window of a streaming bench by default, per simulator (``COSIM_WINDOW``; 1:
#: no wrapper). Measured on mx_add, 100 k vectors (docs/cosim.md): Verilator 68 k cycles/s
#: with 1, 136 k with 4, 146 k with 16, 128 k with 64; Icarus, bound by its own evaluation,
#: is slower through the wrapper (1.5 k against 1.6 k cycles/s), so it keeps 1.
WINDOW = {"verilator": 16, "icarus": 1}


def window_knob(sim: str) -> int:
    """``COSIM_WINDOW``: cycles per exchange between Python and the simulator (an integer
    >= 1; default :data:`WINDOW` of ``sim``). 1 drives the unit's own ports, one trigger per
    cycle; ``K > 1`` drives it through the generated window wrapper (:func:`window_verilog`),
    one trigger per ``K`` cycles."""
    raw = os.environ.get("COSIM_WINDOW", "").strip()
    if not raw:
        return WINDOW[sim]
    try:
        k = int(raw, 0)
    except ValueError:
        raise ValueError(f"COSIM_WINDOW={raw!r}: not an integer (allowed: an integer from 1 "
                         f"to 1024)") from None
    if not 1 <= k <= 1024:
        raise ValueError(f"COSIM_WINDOW={k}: out of range (allowed: an integer from 1 to 1024)")
    return k


def stream_window(test_module: str, sim: str) -> int:
    """Cycles per trigger of a run of ``test_module`` on ``sim``: :func:`window_knob` for a
    stream bench (a module naming a ``PLANNER``), 1 for any other bench."""
    if getattr(importlib.import_module(test_module), "PLANNER", None) is None:
        return 1
    return window_knob(sim)


def window_toplevel(unit: str, k: int) -> str:
    """Module name of the ``k``-cycle window wrapper of ``unit``."""
    return f"win{k}_{unit}"


def window_layout(unit_component, plan: StreamPlan) -> dict[str, list[list]]:
    """The slot layout of the window wrapper: ``{"in": [[port, width], ...], "out": [...]}``
    in the plan's port order (the plan's names, without ``i_``/``o_``). Every data input of
    the unit must be in the plan (the wrapper drives them all); the outputs are the plan's."""
    ins, outs = ({q.name[2:]: q.width for q in ports} for ports in unit_ports(unit_component))
    missing = sorted(set(ins) - set(plan.inputs))
    unknown = sorted(set(plan.inputs) - set(ins)) + sorted(set(plan.outputs) - set(outs))
    if missing or unknown:
        raise ValueError(f"the plan's ports do not match the unit's: inputs not driven "
                         f"{missing}, ports the unit lacks {unknown}")
    for p in (*plan.inputs, *plan.outputs):
        if plan.widths[p] != (ins.get(p) or outs.get(p)):
            raise ValueError(f"port {p!r}: the plan says {plan.widths[p]} bits, the unit "
                             f"{ins.get(p) or outs.get(p)}")
    return {"in": [[p, plan.widths[p]] for p in plan.inputs],
            "out": [[p, plan.widths[p]] for p in plan.outputs]}


def window_verilog(unit: str, layout: Mapping[str, Sequence], k: int) -> str:
    """Verilog text of the window wrapper ``win<k>_<unit>`` around module ``unit``.

    ``i_win`` holds ``k`` input slots, slot ``s`` at bits ``[s*WI +: WI]``: bit 0 is
    ``i_valid``, then the data inputs in ``layout["in"]`` order. A phase counter (0 after
    reset) steps through the slots, one per clock: the unit samples slot ``s`` at the
    ``s``-th rising edge after the window was written. ``o_win`` holds the unit's outputs
    (``o_valid`` at bit 0 of a slot, then ``layout["out"]``) as they were after each of
    those ``k`` edges: slots ``0 .. k-2`` captured at the following edge, slot ``k-1`` live.
    Written at a falling edge and read ``k`` cycles later, the wrapper thus gives the bench
    exactly what it would have driven and read cycle by cycle (docs/cosim.md)."""
    if k < 2:
        raise ValueError(f"a window wrapper needs k >= 2, not {k}")
    wi = 1 + sum(int(w) for _, w in layout["in"])
    wo = 1 + sum(int(w) for _, w in layout["out"])
    pb = max(1, (k - 1).bit_length())
    top = window_toplevel(unit, k)
    pub = "/*verilator public_flat_rw*/"
    lines = [
        "`timescale 1ns/1ps",
        f"// {k}-cycle window wrapper of `{unit}`, generated by cosim.stream (do not edit).",
        f"module {top}(clk, rst, i_win, o_win);",
        f"  input clk {pub};",
        f"  input rst {pub};",
        f"  input [{k * wi - 1}:0] i_win {pub};",
        f"  output [{k * wo - 1}:0] o_win {pub};",
        f"  reg [{pb - 1}:0] ph;",
        f"  wire [{wi - 1}:0] slot = i_win[ph * {wi} +: {wi}];",
        "  wire o_valid;",
    ]
    conns = [".clk(clk)", ".rst(rst)", ".i_valid(slot[0])", ".o_valid(o_valid)"]
    lo = 1
    for p, w in layout["in"]:
        conns.append(f".i_{p}(slot[{lo + int(w) - 1}:{lo}])")
        lo += int(w)
    for p, w in layout["out"]:
        lines.append(f"  wire [{int(w) - 1}:0] w_{p};")
        conns.append(f".o_{p}(w_{p})")
    lines.append(f"  {unit} dut(" + ", ".join(conns) + ");")
    now = ", ".join([f"w_{p}" for p, _ in reversed(layout["out"])] + ["o_valid"])
    caps = ", ".join(f"cap{s}" for s in reversed(range(k - 1)))
    lines += [f"  wire [{wo - 1}:0] now = {{{now}}};"]
    lines += [f"  reg [{wo - 1}:0] cap{s};" for s in range(k - 1)]
    lines += [
        "  always @(posedge clk) begin",
        "    if (rst) ph <= 0;",
        "    else begin",
        *(f"      if (ph == {s + 1}) cap{s} <= now;" for s in range(k - 1)),
        f"      ph <= (ph == {k - 1}) ? 0 : ph + 1;",
        "    end",
        "  end",
        f"  assign o_win = {{now, {caps}}};",
        "endmodule",
        "",
    ]
    return "\n".join(lines)


def write_window(unit: str, layout: Mapping[str, Sequence], k: int, out_dir: Path) -> Path:
    """Write ``<out_dir>/win<k>_<unit>.v`` (only when its text changes); return its path."""
    text = window_verilog(unit, layout, k)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{window_toplevel(unit, k)}.v"
    if not path.is_file() or path.read_text() != text:
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return path


def default_vectors(planner_name: str) -> int:
    """The ``DEFAULT_VECTORS`` of the planner's module."""
    return int(importlib.import_module(planner_name.partition(":")[0]).DEFAULT_VECTORS)


def make_plan(planner_name: str, unit: str, vectors: int, seed: int, *, idle: float,
              mutant: str | None = None) -> tuple[StreamPlan, dict[str, Any]]:
    """The plan of ``vectors`` operations of the registered unit ``unit`` by the planner
    ``"module:function"``, with what the simulator side and the trace need (``meta``)."""
    t0 = time.perf_counter()
    plan = planner(planner_name)(load_unit(unit), vectors, seed, idle=idle, mutant=mutant)
    plan.info["plan_s"] = round(time.perf_counter() - t0, 3)  # stimulus + golden model
    meta = {"planner": planner_name, "unit": unit, "vectors": vectors, "seed": seed,
            "idle": idle, "mutant": mutant or ""}
    return plan, meta


def save_plan(path: str | Path, plan: StreamPlan, meta: Mapping[str, Any]) -> None:
    """Write ``plan`` and its ``meta`` for the simulator side (:func:`load_plan`), which
    then needs neither the golden model nor torch."""
    arrays = {f"in_{p}": _to_bytes(w, plan.widths[p]) for p, w in plan.inputs.items()}
    arrays |= {f"out_{p}": _to_bytes(w, plan.widths[p]) for p, w in plan.outputs.items()}
    arrays |= {f"junk_{p}": _to_bytes(w, plan.widths[p]) for p, w in plan.junk.items()}
    head = {"meta": dict(meta), "widths": plan.widths, "latency": plan.latency,
            "info": plan.info, "inputs": list(plan.inputs), "outputs": list(plan.outputs)}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, head=np.array(json.dumps(head)), gaps=plan.gaps, junk_pick=plan.junk_pick,
             **arrays)
    tmp.replace(path)


def load_plan(path: str | Path) -> tuple[StreamPlan, dict[str, Any]]:
    """``(plan, meta)`` as :func:`save_plan` wrote them."""
    with np.load(path, allow_pickle=False) as z:
        head = json.loads(str(z["head"]))
        words = {k: _from_bytes(z[k]) for k in z.files if k.startswith(("in_", "out_",
                                                                           "junk_"))}
        plan = StreamPlan(
            inputs={p: words[f"in_{p}"] for p in head["inputs"]},
            outputs={p: words[f"out_{p}"] for p in head["outputs"]},
            widths=head["widths"], latency=int(head["latency"]),
            gaps=z["gaps"].astype(np.int64), junk={p: words[f"junk_{p}"] for p in
                                                   head["inputs"] if f"junk_{p}" in words},
            junk_pick=z["junk_pick"].astype(np.int64), info=head["info"])
    return plan, head["meta"]


def planner(name: str) -> Callable[..., StreamPlan]:
    """The planner ``"module:function"``."""
    module, _, fn = name.partition(":")
    return getattr(importlib.import_module(module), fn)


def check_mutant(trace: str | Path, mutant: str) -> tuple[int, int]:
    """Replay the recorded run's plan with the reference mutant ``mutant``; return
    ``(mismatches, vectors)`` of the mutant's expectations against the recorded responses.

    Raises
    ------
    ValueError
        If the rebuilt stimulus differs from the recorded one (the check would be void).
    """
    meta, responses = load_trace(trace)
    plan = planner(meta["planner"])(load_unit(meta["unit"]), meta["vectors"], meta["seed"],
                                    idle=meta["idle"], mutant=mutant)
    if stimulus_digest(plan) != meta["digest"]:
        raise ValueError(f"{trace}: the replayed stimulus of mutant {mutant!r} differs from the "
                         "recorded one")
    return len(compare(plan, responses)), plan.vectors


def load_unit(name: str):
    """A fresh instance of the registered unit ``name``."""
    from hw.export import UNITS, load_units

    if name not in UNITS:
        load_units()
    return UNITS[name]()
