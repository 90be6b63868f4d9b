"""Simulator side of the bulk testbench (``cosim/tb_bulk.py``): the stimulus chunks of each
unit family and their golden-model expectations, driven by :func:`cosim.bulk.drive_chunks`.

* MX8 units (``mx_mul``, ``mx_mul_scalar``, ``mx_add``, ``mx_dot``): the class enumeration of
  :mod:`cosim.coverage` first, then random batches of :func:`cosim.mx_vectors.make_batch`;
  expectations from :class:`cosim.mx_vectors.Expect` (which models the units' PRBS31
  generators); the coverage of every vector is counted (:class:`cosim.coverage.Coverage`).
* SPE slices (``spe_<format>[_sr]``): :func:`cosim.spe_vectors.make_ops` (for MX8 the
  state-update class enumeration first, and the ``update`` coverage counted), expectations
  from :class:`cosim.spe_bench.Model` (:func:`quant.spe_slice.reference`).

Knobs: ``COSIM_VECTORS`` (default :data:`DEFAULT_VECTORS`), ``COSIM_IDLE`` (default 0.1),
``COSIM_MUTANT`` (the mutant reference models of the streaming benches), ``COCOTB_RANDOM_SEED``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import torch

from .bulk import DEPTH, Chunk, drive_chunks
from .tb import env_int, make_rng, unit_of

torch.set_num_threads(1)  # the simulator runs in this process

__all__ = ["CHUNK", "DEFAULT_VECTORS", "run_bulk_bench"]

DEFAULT_VECTORS = 3000
#: Vectors per chunk (the rest of the wrapper's depth is left for idle cycles).
CHUNK = DEPTH * 3 // 4


def _mx_chunks(kind: str, n: int, gen: torch.Generator, rng, model, coverage) -> Iterator[Chunk]:
    from .coverage import enumerate_batch, label_batch
    from .mx_vectors import CLASSES, make_batch, scalar_words, subchunk_words

    sent = 0
    prefix = enumerate_batch(kind)
    while sent < n:
        if sent < len(prefix):
            size = min(len(prefix) - sent, n - sent)
            batch = prefix.slice(sent, sent + size)
        else:
            size = min(CHUNK, n - sent)
            batch = make_batch(kind, size, gen, stoch_prob=rng.choice([0.5, 0.5, 0.1, 0.9]))
        want = model(batch)
        coverage.add(label_batch(batch, rand=model.last_draws()))
        b = scalar_words(batch.b) if kind == "mul_scalar" else subchunk_words(batch.b)
        inputs = {"i_a": subchunk_words(batch.a), "i_b": b}
        out = "o_p" if kind == "dot" else "o_y"
        if kind != "dot":
            inputs["i_stoch"] = [int(x) for x in batch.stoch.tolist()]
        cls = batch.cls.tolist()
        yield Chunk(inputs, {out: want},
                    notes=lambda i, cls=cls: f"generator class {CLASSES[cls[i]]}")
        sent += size


def _spe_chunks(fmt: str, n: int, gen: np.random.Generator, model,
                coverage) -> Iterator[Chunk]:
    from .coverage import label_update
    from .spe_vectors import make_ops

    sent = 0
    while sent < n:
        size = min(CHUNK, n - sent)
        ops = make_ops(fmt, size, gen, directed=fmt == "mx8" and sent == 0)
        if coverage is not None:
            coverage.add(label_update(ops.s, ops.d, ops.k, ops.v))
        want = model(ops.s, ops.d, ops.k, ops.v)
        yield Chunk({"i_s": ops.s, "i_d": ops.d, "i_k": ops.k, "i_v": ops.v}, {"o_s": want},
                    notes=lambda i, cls=ops.cls: f"class {cls[i]}")
        sent += size


async def run_bulk_bench(dut, *, name: str | None = None) -> dict:
    """Run the bulk bench on the wrapper ``bulk_<unit>`` simulated as ``dut``."""
    unit = unit_of(dut)
    rng = make_rng()
    vectors = env_int("COSIM_VECTORS", DEFAULT_VECTORS)
    name = name or dut._name
    kind = getattr(unit, "kind", None)
    mutant = os.environ.get("COSIM_MUTANT", "").strip() or None
    if kind is not None:
        from .coverage import Coverage
        from .mx_bench import mutants
        from .mx_vectors import Expect

        if mutant is not None and mutant not in mutants(kind):
            raise ValueError(f"COSIM_MUTANT={mutant!r}: unknown for {kind} (allowed: "
                             f"{', '.join(mutants(kind))})")
        model = (Expect(kind, mutant=mutant) if kind == "dot" else
                 Expect(kind, rbits=unit.rbits, renorm=unit.renorm, seed=unit.seed,
                        mutant=mutant))
        model.keep_draws = True
        coverage = Coverage(kind)
        gen = torch.Generator().manual_seed(rng.getrandbits(63))
        chunks = _mx_chunks(kind, vectors, gen, rng, model, coverage)
        return await drive_chunks(dut, unit, chunks, rng=rng, name=name,
                                  extra=lambda: {"coverage": coverage.table()})
    if hasattr(unit, "fmt"):
        from .spe_bench import Model, mutants

        fused = getattr(unit, "fused", False)
        if mutant is not None and mutant not in mutants(unit.rounding, fused):
            raise ValueError(f"COSIM_MUTANT={mutant!r}: unknown for rounding {unit.rounding} "
                             f"(allowed: {', '.join(mutants(unit.rounding, fused))})")
        model = Model(unit.fmt, unit.rounding, unit.seeds, mutant=mutant,
                      renorm=getattr(unit, "renorm", "lod"), fused=fused)
        from .coverage import Coverage

        gen = np.random.default_rng(rng.getrandbits(63))
        coverage = Coverage("update") if unit.fmt == "mx8" else None
        return await drive_chunks(
            dut, unit, _spe_chunks(unit.fmt, vectors, gen, model, coverage), rng=rng,
            name=name, extra=None if coverage is None else
            (lambda: {"coverage": coverage.table()}))
    raise ValueError(f"{dut._name}: no bulk stimulus for unit {type(unit).__name__}")
