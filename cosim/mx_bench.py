"""Simulator side of the MX8 unit testbenches (``tb_mx_mul``, ``tb_mx_add``, ``tb_mx_dot``).

One streaming bench (:class:`cosim.tb.StreamBench`: driver with random idle gaps and junk on
idle data ports, monitor, in-order scoreboard checking every output bit and the latency given
by the unit's ``latency`` property). Stimulus comes in batches from
:func:`cosim.mx_vectors.make_batch` — a directed prefix, the class enumeration of
:mod:`cosim.coverage` (every lane-level operand class), then random batches — and each
batch's expected outputs come from one vectorised golden-model call
(:class:`cosim.mx_vectors.Expect`, which also models the unit's PRBS31 generator from its
``seed``). The bench's per-transaction model only pops them.
The operand classes of every batch are counted (:class:`cosim.coverage.Coverage`) and the
table goes into the bench's counters (``coverage``).

Knobs: ``COSIM_VECTORS`` (default :data:`DEFAULT_VECTORS`), ``COSIM_IDLE``,
``COSIM_MUTANT`` (one of :data:`cosim.mx_vectors.Expect.MUTANTS`: a wrong way of calling the
model, which must make the scoreboard fail), ``COCOTB_RANDOM_SEED``.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Iterator
from functools import partial

import torch

from cosim.mx_vectors import Expect, make_batch, scalar_words, subchunk_words
from cosim.coverage import Coverage, label_batch
from cosim.tb import StreamBench, env_int, make_rng, select_model, unit_of, write_result

# The simulator runs in this process: torch's worker threads would only fight it for the
# cores (a 4096-vector batch takes ~50 ms on one thread and >1 s on two contended ones).
torch.set_num_threads(1)

__all__ = ["DEFAULT_VECTORS", "BATCH", "directed_length", "MxIn", "MxOut", "DotIn", "DotRes",
           "run_mx_bench"]

DEFAULT_VECTORS = 3000
#: Operations per golden-model call.
BATCH = 4096


def directed_length(kind: str) -> int:
    """Length of the directed prefix: the class enumeration of :mod:`cosim.coverage` (every
    lane-level operand class, about 300 operations)."""
    from cosim.coverage import enumerate_batch

    return len(enumerate_batch(kind))


@dataclasses.dataclass(frozen=True)
class MxIn:
    """Operands of a multiplier or adder operation (port values ``i_a``, ``i_b``,
    ``i_stoch``)."""
    a: int
    b: int
    stoch: int


@dataclasses.dataclass(frozen=True)
class MxOut:
    """A result sub-chunk (``o_y``)."""
    y: int


@dataclasses.dataclass(frozen=True)
class DotIn:
    """Operands of a dot product (``i_a``, ``i_b``)."""
    a: int
    b: int


@dataclasses.dataclass(frozen=True)
class DotRes:
    """The 37-bit partial word (``o_p``)."""
    p: int


def _models(kind: str) -> dict:
    models = {"golden": partial(Expect, kind)}
    for name in Expect.MUTANTS:
        if kind == "dot" and name != "drop_mu_a":
            continue
        models[name] = partial(Expect, kind, mutant=name)
    return models


def _stimulus(kind: str, n: int, gen: torch.Generator, rng, model: Expect,
              expected: deque, coverage=None) -> Iterator:
    """Transactions of ``n`` operations; the expected outputs of each batch are queued in
    ``expected`` before its first transaction is handed out (and its operand classes counted
    in ``coverage``)."""
    sent = 0
    first = True
    while sent < n:
        size = min(directed_length(kind) if first else BATCH, n - sent)
        stoch_prob = rng.choice([0.5, 0.5, 0.1, 0.9])
        batch = make_batch(kind, size, gen, directed=first, stoch_prob=stoch_prob)
        first = False
        want = model(batch)
        if coverage is not None:
            coverage.add(label_batch(batch, rand=model.last_draws()))
        aw = subchunk_words(batch.a)
        bw = scalar_words(batch.b) if kind == "mul_scalar" else subchunk_words(batch.b)
        stoch = batch.stoch.tolist()
        for i in range(size):
            if kind == "dot":
                txn = DotIn(aw[i], bw[i])
                expected.append((txn, DotRes(want[i])))
            else:
                txn = MxIn(aw[i], bw[i], int(stoch[i]))
                expected.append((txn, MxOut(want[i])))
            yield txn
        sent += size


async def run_mx_bench(dut, *, name: str | None = None) -> dict:
    """Run the streaming bench on the MX unit simulated as ``dut``; return its counters."""
    unit = unit_of(dut)
    kind = unit.kind
    rng = make_rng()
    factory = select_model(_models(kind))
    if kind == "dot":
        model = factory()
        in_type, out_type = DotIn, DotRes
    else:
        model = factory(rbits=unit.rbits, renorm=unit.renorm, seed=unit.seed)
        in_type, out_type = MxIn, MxOut
    expected: deque = deque()

    def pop(txn):
        sent, out = expected.popleft()
        assert sent is txn, "stimulus and expectations out of step"
        return out

    bench = StreamBench(dut, in_type=in_type, out_type=out_type, model=pop,
                        latency=unit.latency, rng=rng, name=name)
    vectors = env_int("COSIM_VECTORS", DEFAULT_VECTORS)
    gen = torch.Generator().manual_seed(rng.getrandbits(63))
    bench.log.info("%s (%s): %d vectors, latency %d, %s", dut._name, kind, vectors,
                   unit.latency, "" if kind == "dot" else
                   f"rbits {unit.rbits}, renorm {unit.renorm}, seed {unit.seed:#x}")
    model.keep_draws = True
    coverage = Coverage(kind)
    result = await bench.run(_stimulus(kind, vectors, gen, rng, model, expected, coverage))
    result = {**result, "coverage": coverage.table()}
    write_result(bench.name, result)
    return result
