"""The MX8 unit testbenches (``mx_mul``, ``mx_mul_scalar``, ``mx_add``, ``mx_dot``) as a
stream plan (:mod:`cosim.stream`), played by ``cosim/tb_mx.py``.

Stimulus comes in batches from :func:`cosim.mx_vectors.make_batch` — a directed prefix that
is the class enumeration of :mod:`cosim.coverage` (every lane-level operand class),
then random batches — and
each batch's expected outputs come from one vectorised golden-model call
(:class:`cosim.mx_vectors.Expect`, which also models the unit's PRBS31 generator from its
``seed``). Idle gaps and the junk driven on idle data ports come from the same seed.
The operand classes of every batch are counted (:class:`cosim.coverage.Coverage`) and the
table goes into the bench's counters (``coverage``).

Reference mutants (:data:`cosim.mx_vectors.Expect.MUTANTS`: a wrong way of calling the
model; ``mx_dot`` has only ``drop_mu_a``) are planned with the same stimulus and checked
offline against a golden run's recorded responses (:func:`cosim.stream.check_mutant`).

Knobs (read by :func:`cosim.runner.run_cosim`, which plans before the simulator starts):
``COSIM_VECTORS`` (default :data:`DEFAULT_VECTORS`), ``COSIM_IDLE``, ``COSIM_MUTANT``,
``COCOTB_RANDOM_SEED``.
"""

from __future__ import annotations

import random

import numpy as np
import torch

from cosim.mx_vectors import Expect, make_batch, scalar_words, subchunk_words
from cosim.coverage import Coverage, label_batch
from cosim.stream import StreamPlan, gaps, junk_pool, port_widths

# Planned in a pool worker beside another one (python -m cosim) or a simulator: torch's
# worker threads would only fight them for the cores (a 4096-vector batch takes ~50 ms on
# one thread and >1 s on two contended ones).
torch.set_num_threads(1)

__all__ = ["BATCH", "DEFAULT_VECTORS", "directed_length", "mutants", "plan"]

DEFAULT_VECTORS = 3000
#: Operations per golden-model call.
BATCH = 4096


def directed_length(kind: str) -> int:
    """Length of the directed prefix: the class enumeration of :mod:`cosim.coverage` (every
    lane-level operand class, about 300 operations)."""
    from cosim.coverage import enumerate_batch

    return len(enumerate_batch(kind))




def mutants(kind: str) -> tuple[str, ...]:
    """The reference mutants that apply to an MX unit of ``kind``."""
    return ("drop_mu_a",) if kind == "dot" else Expect.MUTANTS


def plan(unit, vectors: int, seed: int, *, idle: float = 0.25,
         mutant: str | None = None) -> StreamPlan:
    """``vectors`` operations of the MX unit ``unit`` (its ``kind``, ``latency`` and, for the
    rounding units, ``rbits``/``renorm``/``seed``), all drawn from ``seed``."""
    kind = unit.kind
    if mutant is not None and mutant not in mutants(kind):
        raise ValueError(f"COSIM_MUTANT={mutant!r}: unknown for {kind} (allowed: "
                         f"{', '.join(mutants(kind))})")
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(rng.getrandbits(63))
    if kind == "dot":
        model = Expect(kind, mutant=mutant)
        out_port, in_ports = "p", ("a", "b")
    else:
        model = Expect(kind, rbits=unit.rbits, renorm=unit.renorm, seed=unit.seed,
                       mutant=mutant)
        out_port, in_ports = "y", ("a", "b", "stoch")
    model.keep_draws = True
    coverage = Coverage(kind)
    inputs: dict[str, list[int]] = {p: [] for p in in_ports}
    expected: list[int] = []
    batches = []
    while len(expected) < vectors:
        first = not batches
        size = min(directed_length(kind) if first else BATCH, vectors - len(expected))
        stoch_prob = rng.choice([0.5, 0.5, 0.1, 0.9])
        batch = make_batch(kind, size, gen, directed=first, stoch_prob=stoch_prob)
        batches.append(batch)
        expected += model(batch)
        coverage.add(label_batch(batch, rand=model.last_draws()))
        inputs["a"] += subchunk_words(batch.a)
        inputs["b"] += scalar_words(batch.b) if kind == "mul_scalar" else subchunk_words(
            batch.b)
        if "stoch" in inputs:
            inputs["stoch"] += [int(s) for s in batch.stoch.tolist()]
    widths = port_widths(unit, in_ports, (out_port,))
    nrng = np.random.default_rng(rng.getrandbits(63))
    g = gaps(nrng, vectors, idle)
    junk, pick = junk_pool(nrng, widths, in_ports, int(g.sum()))
    info = {"kind": kind, "coverage": coverage.table()}
    if kind != "dot":
        info.update(rbits=unit.rbits, renorm=unit.renorm, lfsr_seed=unit.seed)
    return StreamPlan(inputs=inputs, outputs={out_port: expected}, widths=widths,
                      latency=unit.latency, gaps=g, junk=junk, junk_pick=pick,
                      batches=batches, info=info)

