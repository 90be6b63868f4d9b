"""Synthetic state-update workloads with the statistics of each model family.

Every workload produces, step after step, the inputs of one state update for ``L = batch *
heads`` independent states (``S``: ``(L, dim_state, dim_head)``, the SPE layout: state column
``j`` is row ``j``, MX8/int8 groups run along ``dim_head``)::

    d: (L, dim_head)   decay (scalar per head broadcast, or per-element gate)
    k: (L, dim_head)   key
    v: (L, dim_state)  value
    q: (L, dim_head)   query

Families (``dim_head`` x ``dim_state`` are the brief's 2.7B shapes, section 6):

``mamba2`` (128 x 64)
    Per head ``A_h ~ U[1, 16]`` and a time-step bias ``dt0_h`` log-uniform in
    ``[1e-3, 1e-1]`` (the ``mamba_ssm`` initialisation ranges; stratified over the heads so
    few heads still span the range). Per step ``dt = softplus(softplus^-1(dt0_h) + 0.5 eps)``,
    decay ``d = exp(-dt A_h)`` (scalar per head); ``x, B, C`` are SiLU outputs as after
    Mamba-2's conv1d (``silu(N(0, 1))``: mean 0.21, so the update has a coherent part, the
    classic swamping situation): ``k = B`` (d_state), ``v = dt * x`` (head_dim), ``q = C``.
    (Mamba-2's state ``(head_dim, d_state)`` is the brief's
    ``(dim_state, dim_head)``: the SPE contracts over ``d_state``.)
``retnet`` (256 x 512)
    Fixed decay per head ``gamma_h = 1 - 2**(-5 - h)``, ``h = 0 .. heads-1`` (RetNet's
    multi-scale retention; 10 heads reach ``1 - 2**-14``); ``k ~ N(0, 1) / sqrt(dim_head)``,
    ``v, q ~ N(0, 1)``.
``gla`` (256 x 512)
    Per-element gate ``alpha = exp(logsigmoid(z) / 16)`` (GLA's gate normaliser), with
    ``z = b + eps``, ``b ~ U[-2, 6]`` per (head, element) (a spread of memory horizons from
    ~20 to ~6000 steps); ``k ~ N(0, 1) / sqrt(dim_head)``, ``v, q ~ N(0, 1)``.
``hgrn2`` (128 x 128)
    Per-element forget gate ``f = lb_h + (1 - lb_h) sigmoid(z)``, ``z ~ N(0, 1)``, lower
    bound ``lb_h`` linear in ``[0, 0.98]`` over the heads (HGRN2's layer-wise lower bounds);
    ``k = 1 - f`` (tied input gate), ``v, q ~ N(0, 1)``.

All randomness comes from one ``torch.Generator`` seeded with the workload seed: the same
seed gives the same inputs, bit for bit, whatever variants consume them.

Because state columns are independent given ``d, k, q`` (column ``j`` only sees ``v_j``), the
study may simulate fewer state columns than the model has (``dim_state`` override) without
changing the per-column statistics; ``dim_head`` (the grouped, contracted dimension) is kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["FAMILIES", "Workload", "Inputs", "make_workload", "InputStream"]


@dataclass(frozen=True)
class _Family:
    dim_head: int
    dim_state: int
    heads: int  # the family's head count in the brief (2.7B model)


FAMILIES = {
    "mamba2": _Family(128, 64, 80),
    "retnet": _Family(256, 512, 10),
    "gla": _Family(256, 512, 5),
    "hgrn2": _Family(128, 128, 20),
}


@dataclass(frozen=True)
class Inputs:
    """One step's inputs (float32)."""

    d: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    q: torch.Tensor


@dataclass(frozen=True)
class Workload:
    """A workload instance: family, shape and size. ``L = batch * heads`` states."""

    family: str
    heads: int
    batch: int
    dim_head: int
    dim_state: int

    @property
    def lead(self) -> int:
        return self.batch * self.heads

    def subchunks_per_step(self) -> int:
        """SPE sub-chunk updates per step (the exact datapath's cost unit)."""
        return self.lead * self.dim_state * self.dim_head // 32

    def describe(self) -> dict:
        return {"workload": self.family, "heads": self.heads, "batch": self.batch,
                "dim_head": self.dim_head, "dim_state": self.dim_state}


def make_workload(family: str, *, heads: int | None = None, batch: int = 1,
                  dim_state: int | None = None) -> Workload:
    """Validated workload; ``heads`` defaults to the brief's head count, ``dim_state`` to the
    brief's (a smaller multiple of 16 simulates a subset of the state columns)."""
    if family not in FAMILIES:
        raise ValueError(f"workload must be one of {','.join(FAMILIES)}, not {family!r}")
    fam = FAMILIES[family]
    heads = fam.heads if heads is None else heads
    dim_state = fam.dim_state if dim_state is None else dim_state
    for name, val in (("heads", heads), ("batch", batch), ("dim_state", dim_state)):
        if isinstance(val, bool) or not isinstance(val, int) or val < 1:
            raise ValueError(f"{name} must be a positive integer, not {val!r}")
    if dim_state % 16 or dim_state > fam.dim_state:
        raise ValueError(f"dim_state must be a multiple of 16 and at most {fam.dim_state} for "
                         f"{family}, not {dim_state}")
    return Workload(family, heads, batch, fam.dim_head, dim_state)


def _inv_softplus(x: torch.Tensor) -> torch.Tensor:
    return x + torch.log(-torch.expm1(-x))


class InputStream:
    """Deterministic per-step inputs of a workload (``next()`` gives :class:`Inputs`)."""

    def __init__(self, wl: Workload, seed: int):
        self.wl = wl
        self.gen = torch.Generator().manual_seed(int(seed))
        g, H, B = self.gen, wl.heads, wl.batch
        dh = wl.dim_head
        f = wl.family
        # Per-head (or per-head-element) parameters, drawn first from the same generator.
        if f == "mamba2":
            self.A = (1 + 15 * torch.rand(H, generator=g, dtype=torch.float64))
            strat = (torch.arange(H, dtype=torch.float64)
                     + torch.rand(H, generator=g, dtype=torch.float64)) / H
            log_dt = math.log(1e-3) + strat * (math.log(1e-1) - math.log(1e-3))
            self.dt_bias = _inv_softplus(torch.exp(log_dt))
        elif f == "retnet":
            self.gamma = 1 - torch.pow(2.0, -5.0 - torch.arange(H, dtype=torch.float64))
        elif f == "gla":
            self.gbias = -2 + 8 * torch.rand(H, dh, generator=g, dtype=torch.float64)
        elif f == "hgrn2":
            self.lb = torch.linspace(0.0, 0.98, H, dtype=torch.float64) if H > 1 else \
                torch.tensor([0.98], dtype=torch.float64)
        self._B = B

    def _rep(self, t: torch.Tensor) -> torch.Tensor:
        """Per-head tensor (H, ...) -> per-state (B*H, ...) (batch-major)."""
        return t.unsqueeze(0).expand(self._B, *t.shape).reshape(-1, *t.shape[1:])

    def _randn(self, *shape) -> torch.Tensor:
        return torch.randn(*shape, generator=self.gen, dtype=torch.float64)

    def next(self) -> Inputs:
        wl = self.wl
        L, dh, ds = wl.lead, wl.dim_head, wl.dim_state
        f = wl.family
        if f == "mamba2":
            dt = F.softplus(self._rep(self.dt_bias) + 0.5 * self._randn(L))  # (L,)
            d = torch.exp(-dt * self._rep(self.A))[:, None].expand(L, dh)
            k = F.silu(self._randn(L, dh))
            v = dt[:, None] * F.silu(self._randn(L, ds))
            q = F.silu(self._randn(L, dh))
        elif f == "retnet":
            d = self._rep(self.gamma)[:, None].expand(L, dh)
            k = self._randn(L, dh) / math.sqrt(dh)
            v = self._randn(L, ds)
            q = self._randn(L, dh)
        elif f == "gla":
            z = self._rep(self.gbias) + self._randn(L, dh)
            d = torch.exp(F.logsigmoid(z) / 16)
            k = self._randn(L, dh) / math.sqrt(dh)
            v = self._randn(L, ds)
            q = self._randn(L, dh)
        else:  # hgrn2
            lb = self._rep(self.lb)[:, None]
            fg = lb + (1 - lb) * torch.sigmoid(self._randn(L, dh))
            d = fg
            k = 1 - fg
            v = self._randn(L, ds)
            q = self._randn(L, dh)
        c = lambda t: t.to(torch.float32).contiguous()  # noqa: E731
        return Inputs(c(d), c(k), c(v), c(q))

    def __iter__(self):
        while True:
            yield self.next()

