"""End-to-end evaluation of one point: a model served by a system on a GPU group.

Generation only (prefill runs on the GPU in every system and is not counted): for each of the
``output_len`` steps every operator of :func:`sysmodel.workload.step_operators` runs once per
layer, on the GPU or -- state update and attention in PIM systems -- in PIM, one after the
other (GPU and PIM never overlap). The KV length of step ``t`` (from 0) is
``input_len + t + 1``. Throughput = generated tokens (batch x output_len) / generation time.

Every kernel of :func:`sysmodel.workload.step_kernels` (the serving engine's launches per decode
step) adds the GPU's fixed per-kernel cost to its category: replayed from a CUDA graph unless
the point or the system says otherwise.

Memory capacity (:func:`memory_gb`): weights, recurrent states, the KV cache at the final
length and the largest operator's activations, per GPU. A point whose total exceeds the GPU's
memory does not fit: its row says so (``fits_memory`` 0) and headline means leave it out.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from . import pim
from .cost import Cost, energy_j
from .gpu import elementwise_cost, gpu_cost, SOFTMAX_OPS
from .hardware import (GpuSpec, Hardware, PimUnit, REPO_ROOT, SystemSpec, ceil_div,
                       load_hardware)
from .workload import (ACT_BYTES, CATEGORIES, PIM_CATEGORIES, Attention, Elementwise, Gemm,
                       ModelSpec, StateUpdate, get_model, load_models, step_kernels,
                       step_operators)


@dataclass(frozen=True)
class Point:
    """One configuration to evaluate."""

    model: str
    system: str
    gpu: str = "A100"
    num_gpus: int = 1
    batch_size: int = 128
    input_len: int = 2048
    output_len: int = 2048
    cuda_graphs: bool | None = None     # None: the system's setting (systems.yaml)


@dataclass(frozen=True)
class Result:
    """Outcome of one point; times and energies summed over all output steps.

    Members
    -------
    time_s, energy_j : tuple of (category, value)
        Split by :data:`sysmodel.workload.CATEGORIES`.
    """

    point: Point
    time_s: tuple
    energy_j: tuple
    memory_gb_per_gpu: float
    memory_capacity_gb: float
    state_update_time_s: float
    timing_source: str
    cuda_graphs: bool = True
    kernels_per_step: int = 0

    @property
    def fits_memory(self) -> bool:
        """Whether weights, states, KV cache and activations fit in each GPU's memory."""
        return self.memory_gb_per_gpu <= self.memory_capacity_gb

    @property
    def total_time_s(self) -> float:
        """Generation time."""
        return sum(v for _, v in self.time_s)

    @property
    def total_energy_j(self) -> float:
        """Generation energy."""
        return sum(v for _, v in self.energy_j)

    @property
    def tokens_per_s(self) -> float:
        """Generated tokens per second."""
        return self.point.batch_size * self.point.output_len / self.total_time_s

    def row(self) -> dict:
        """Flat record for the sweep table (column order is the table's)."""
        p = self.point
        row = {f.name: getattr(p, f.name) for f in fields(Point)}
        row["batch_size"] = p.batch_size
        row["cuda_graphs"] = int(self.cuda_graphs)
        su = self.state_update_time_s
        row.update({
            "tokens_per_s": self.tokens_per_s,
            "latency_per_token_s": self.total_time_s / p.output_len,
            "time_total_s": self.total_time_s,
            **{f"time_{c}_s": v for c, v in self.time_s},
            "energy_j": self.total_energy_j,
            **{f"energy_{c}_j": v for c, v in self.energy_j},
            "state_update_tokens_per_s": (p.batch_size * p.output_len / su) if su else 0.0,
            "memory_gb_per_gpu": self.memory_gb_per_gpu,
            "memory_capacity_gb": self.memory_capacity_gb,
            "fits_memory": int(self.fits_memory),
            "kernels_per_step": self.kernels_per_step,
            "timing_source": self.timing_source,
        })
        return row


def _pim_cost(ph: pim.Phase) -> Cost:
    work = ph.work
    return Cost(time_s=ph.time_s, pim_activations=work.rows, pim_columns=work.column_accesses,
                pim_comps=work.comps)


def pim_state_update_cost(gpu: GpuSpec, unit: PimUnit, op: StateUpdate) -> Cost:
    """State update in PIM, plus the GPU summing the partial outputs."""
    ph = pim.phase(gpu.memory, unit, "state_update", op.batch, op.heads, op.dim_head,
                   op.dim_state, per_element_decay=op.vector_gate)
    partials = op.batch * op.heads * op.dim_state * float(np.max(ph.partials))
    return _pim_cost(ph) + elementwise_cost(gpu, 0.0, op.output_bytes, partials)


def pim_attention_cost(gpu: GpuSpec, unit: PimUnit, op: Attention, kv_len: np.ndarray) -> Cost:
    """Attention in PIM: append K/V, score in PIM, softmax on the GPU, attend in PIM."""
    hbm = gpu.memory
    score = pim.phase(hbm, unit, "score", op.batch, op.heads, op.dim_head, kv_len)
    attend = pim.phase(hbm, unit, "attend", op.batch, op.heads, op.dim_head, kv_len)
    rows = op.batch * op.heads
    kv_len = np.asarray(kv_len, dtype=np.float64)
    append = elementwise_cost(gpu, 0.0, 2.0 * rows * op.dim_head * unit.format.bytes_per_value,
                              0.0)
    # Softmax: sum the partial scores, exponentiate, normalise; scores go back as REG_WRITEs.
    softmax = elementwise_cost(gpu, 0.0, rows * kv_len * ACT_BYTES,
                               rows * kv_len * (score.partials + SOFTMAX_OPS))
    reduce_out = elementwise_cost(gpu, 0.0, rows * op.dim_head * ACT_BYTES,
                                  rows * op.dim_head * attend.partials)
    return append + _pim_cost(score) + softmax + _pim_cost(attend) + reduce_out


def memory_parts_gb(model: ModelSpec, system: SystemSpec, point: Point) -> dict:
    """Memory of one GPU of the tensor-parallel group, in GB, by part.

    From the operators one GPU runs (:func:`sysmodel.workload.step_operators`, so heads dealt
    out as ``ceil(heads / gpus)`` and replicated B/C groups count as they are stored):
    ``weights`` (every GEMM's ``k x n`` plus the vocabulary-split embedding, fp16), ``state``
    (every state in the system's state format), ``kv`` (K and V of every attention layer at the
    final length ``input_len + output_len`` in the KV format) and ``activations`` (the largest
    operator's inputs and outputs, fp16: the decode step's live working set).
    """
    b, gpus = point.batch_size, point.num_gpus
    kv_len = point.input_len + point.output_len
    weights = ceil_div(model.vocab, gpus) * model.hidden * ACT_BYTES
    state = kv = act = 0.0
    for op, count in step_operators(model, b, gpus):
        if isinstance(op, Gemm):
            weights += op.k * op.n * ACT_BYTES * count
            act = max(act, (op.m * op.k + op.m * op.n) * ACT_BYTES)
        elif isinstance(op, StateUpdate):
            state += op.values * system.state_format.bytes_per_value * count
        elif isinstance(op, Attention):
            kv += (2.0 * op.batch * op.heads * op.dim_head * kv_len
                   * system.kv_format.bytes_per_value * count)
        elif isinstance(op, Elementwise):
            act = max(act, op.bytes_read + op.bytes_written)
    return {"weights": weights / 1e9, "state": state / 1e9, "kv": kv / 1e9,
            "activations": act / 1e9}


def memory_gb(model: ModelSpec, system: SystemSpec, point: Point) -> float:
    """Memory one GPU needs, in GB (the sum of :func:`memory_parts_gb`)."""
    return sum(memory_parts_gb(model, system, point).values())


def _timing_source(system: SystemSpec) -> str:
    if system.pim_unit is None:
        return ""
    sources = sorted({tm.source for _, tm in system.pim_unit.timing})
    out = []
    for s in sources:
        try:
            out.append(str(Path(s).resolve().relative_to(REPO_ROOT)))
        except ValueError:
            out.append(s)
    return ";".join(out)


def evaluate(point: Point, hardware: Hardware | None = None,
             models: dict | None = None) -> Result:
    """Evaluate one point (see the module docstring)."""
    hw = load_hardware() if hardware is None else hardware
    models = load_models() if models is None else models
    model = get_model(point.model, models)
    system = hw.system(point.system)
    gpu = hw.gpu(point.gpu)
    if point.num_gpus < 1 or point.batch_size < 1 or point.output_len < 1 or point.input_len < 0:
        raise ValueError(f"bad point {point}: num_gpus, batch_size, output_len must be >= 1")
    kv_len = point.input_len + 1 + np.arange(point.output_len, dtype=np.int64)
    graphs = system.cuda_graphs if point.cuda_graphs is None else bool(point.cuda_graphs)
    pim_cats = frozenset(c for c in PIM_CATEGORIES if system.in_pim(c))
    kernels = step_kernels(model, pim_cats)
    totals = {c: Cost(time_s=kernels[c] * gpu.kernel_s(graphs) * point.output_len)
              for c in CATEGORIES}
    for op, count in step_operators(model, point.batch_size, point.num_gpus):
        if isinstance(op, StateUpdate) and system.in_pim("state_update"):
            cost = pim_state_update_cost(gpu, system.pim_unit, op)
        elif isinstance(op, Attention) and system.in_pim("attention"):
            cost = pim_attention_cost(gpu, system.pim_unit, op, kv_len)
        else:
            cost = gpu_cost(gpu, op, point.num_gpus, system.state_format, system.kv_format,
                            kv_len)
        totals[op.category] = totals[op.category] + cost.total(point.output_len).scaled(count)
    return Result(
        point=point,
        time_s=tuple((c, totals[c].time_s) for c in CATEGORIES),
        energy_j=tuple((c, energy_j(totals[c], hw.energy, point.num_gpus)) for c in CATEGORIES),
        memory_gb_per_gpu=memory_gb(model, system, point),
        memory_capacity_gb=gpu.memory_gb,
        state_update_time_s=totals["state_update"].time_s,
        timing_source=_timing_source(system),
        cuda_graphs=graphs,
        kernels_per_step=sum(kernels.values()),
    )


__all__ = ["Point", "Result", "evaluate", "memory_gb", "memory_parts_gb",
           "pim_state_update_cost", "pim_attention_cost"]
