"""What an operator costs on a device -- time and the traffic energy is computed from.

Fields may be scalars or numpy arrays over the output steps (attention grows with the KV
length); :meth:`Cost.total` sums them. :func:`energy_j` is the single energy formula of the
model (docs/design.md §7):

* GPU: every byte read from or written to DRAM also passes L2, L1 and the register file once;
  re-reads that L2 serves pass L2, L1 and registers; each operation costs one ALU operation;
  bytes sent over NVLink cost the interconnect energy.
* PIM: each bank activation, each 32-byte column access (inside the bank for COMP reads and
  write-backs, and on the bus for REG_WRITE and RESULT_READ) and each COMP command (which
  drives every unit of one pseudo-channel).

Static and refresh energy are not modelled.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from .hardware import EnergySpec


@dataclass(frozen=True)
class Cost:
    """Time and traffic of one operator (per GPU, except ``link_bytes``: all GPUs).

    Members
    -------
    time_s : float or array
        Seconds.
    dram_bytes, l2_bytes : float or array
        GPU DRAM bytes and re-read bytes served by L2.
    ops : float or array
        GPU arithmetic operations.
    link_bytes : float
        Bytes sent over the interconnect, summed over all GPUs.
    pim_activations, pim_columns, pim_comps : float or array
        PIM bank activations, column accesses and COMP commands.
    """

    time_s: object = 0.0
    dram_bytes: object = 0.0
    l2_bytes: object = 0.0
    ops: object = 0.0
    link_bytes: object = 0.0
    pim_activations: object = 0.0
    pim_columns: object = 0.0
    pim_comps: object = 0.0

    def __add__(self, other: "Cost") -> "Cost":
        return Cost(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(Cost)))

    def scaled(self, factor: float) -> "Cost":
        """Every field times ``factor`` (a repeat count)."""
        return Cost(*(getattr(self, f.name) * factor for f in fields(Cost)))

    def total(self, steps: int) -> "Cost":
        """Sum over ``steps`` output steps: arrays are summed, scalars multiplied."""
        out = []
        for f in fields(Cost):
            value = getattr(self, f.name)
            out.append(float(np.sum(value)) if np.ndim(value) else float(value) * steps)
        return Cost(*out)


def energy_j(cost: Cost, e: EnergySpec, gpus: int) -> float:
    """Joules of ``cost`` on ``gpus`` GPUs (per-GPU fields are multiplied by ``gpus``)."""
    on_chip = e.l2_pj_per_byte + e.l1_pj_per_byte + e.register_pj_per_byte
    gpu_pj = (cost.dram_bytes * (e.dram_pj_per_byte + on_chip) + cost.l2_bytes * on_chip
              + cost.ops * e.alu_pj_per_op)
    pim_pj = (cost.pim_activations * e.activation_pj_per_bank
              + cost.pim_columns * e.column_access_pj + cost.pim_comps * e.comp_pj)
    return ((gpu_pj + pim_pj) * gpus + cost.link_bytes * e.interconnect_pj_per_byte) * 1e-12
