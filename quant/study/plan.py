"""The study as data: the list of runs ``python -m quant.study all`` executes.

Sizes are chosen so that the whole study fits in about ten minutes on two CPU cores (the
exact datapath, the golden model, runs ~0.15 M sub-chunk updates per second per core):

* every workload keeps the brief's ``dim_head`` (the grouped, contracted dimension) and
  simulates 16 of its state columns (columns are statistically independent, see
  :mod:`quant.study.workloads`), batch 1, with the head counts of :data:`STUDY_SHAPES`;
* fake-quant variants (all formats and ``mx8c`` x both roundings): every workload, seeds
  ``seeds`` (0 and 1) at ``steps``; seed 0 of ``mamba2`` runs ``long_steps`` (8192) so its
  curves extend past 2048 (fake-quant costs ~0.1-0.2 us per element per variant-step, so the
  long run is kept to one workload);
* the exact MX8 datapath: every workload, seed 0, ``steps``, three settings (the spec as
  written; with the carrying decay encoding; round-to-nearest) plus the fake-quant
  decomposition (MX8 inputs, fp32 arithmetic);
* the renormalization x random-bit sweep (lod/fixed x RTN, SR2, SR4, SR6, SR8) and the
  hardware LFSR source: on ``mamba2``, seed 0, ``steps``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .runner import CARRY_FORMAT, FORMATS, ROUNDINGS, Variant, make_variant
from .workloads import Workload, make_workload

__all__ = ["STUDY_SHAPES", "Job", "default_plan", "fused_plan", "SPEC", "RECOMMENDED",
           "FUSED", "FUSED_FEEDBACK"]

#: heads and simulated state columns per workload in the study
STUDY_SHAPES = {
    "mamba2": {"heads": 8, "dim_state": 16},
    "retnet": {"heads": 10, "dim_state": 16},
    "gla": {"heads": 5, "dim_state": 16},
    "hgrn2": {"heads": 8, "dim_state": 16},
}

#: the exact datapath as the spec is written today (SPEConfig defaults, d rounded to nearest)
SPEC = make_variant("exact", "mx8", "stochastic", 8, renorm="lod", decay="nearest")
#: the same with the GPU encoding d stochastically with carry
RECOMMENDED = make_variant("exact", "mx8", "stochastic", 8, renorm="lod",
                           decay="stochastic-carry")
#: the recommended setting with the fused update (one rounding, docs/mx8.md section 8a)
FUSED = make_variant("exact", "mx8", "stochastic", 8, renorm="lod", decay="stochastic-carry",
                     fused=True)
#: the recommended design (docs/study.md, "Whether it becomes the default"): the fused update
#: with the decay encoded with error feedback by the GPU
FUSED_FEEDBACK = make_variant("exact", "mx8", "stochastic", 8, renorm="lod", decay="feedback",
                              fused=True)


@dataclass(frozen=True)
class Job:
    """One lock-step run: a workload, a seed, a number of steps and its variants."""

    workload: Workload
    seed: int
    steps: int
    variants: tuple[Variant, ...]

    def cost(self) -> float:
        """Rough cost in exact-datapath sub-chunk updates (for ordering the jobs)."""
        per = self.workload.subchunks_per_step()
        c = 0.0
        for v in self.variants:
            if v.datapath == "exact":
                c += per * (4.0 if v.rng == "lfsr" else 1.0)
            else:
                c += per * 0.3
        return c * self.steps


def fakequant_variants() -> list[Variant]:
    return [make_variant("fakequant", f, r) for f in FORMATS + (CARRY_FORMAT,)
            for r in ROUNDINGS]


def exact_main_variants() -> list[Variant]:
    return [
        SPEC,
        RECOMMENDED,
        FUSED,
        make_variant("exact", "mx8", "nearest", renorm="lod", decay="nearest"),
        make_variant("fakequant", "mx8", "stochastic", 8, inputs="mx8", decay="nearest"),
        make_variant("fakequant", "mx8", "stochastic", 8, inputs="mx8",
                     decay="stochastic-carry"),
    ]


def sweep_variants() -> list[Variant]:
    out = []
    for renorm in ("lod", "fixed"):
        out.append(make_variant("exact", "mx8", "nearest", renorm=renorm,
                                decay="stochastic-carry"))
        for r in (2, 4, 6, 8):
            v = make_variant("exact", "mx8", "stochastic", r, renorm=renorm,
                             decay="stochastic-carry")
            if v != RECOMMENDED:
                out.append(v)
    out.append(make_variant("exact", "mx8", "stochastic", 8, renorm="lod", rng="lfsr",
                            decay="stochastic-carry"))
    return out


def default_plan(steps: int = 2048, long_steps: int = 8192, seeds=(0, 1),
                 sweep_workloads=("mamba2",), long_workloads=("mamba2",)) -> list[Job]:
    """The list of jobs of ``study all`` (largest first)."""
    jobs = []
    for fam, shape in STUDY_SHAPES.items():
        wl = make_workload(fam, **shape)
        for s in seeds:
            long = s == seeds[0] and fam in long_workloads
            n = max(steps, long_steps) if long else steps
            jobs.append(Job(wl, s, n, tuple(fakequant_variants())))
        for v in exact_main_variants():
            jobs.append(Job(wl, seeds[0], steps, (v,)))
        if fam in sweep_workloads:
            for v in sweep_variants():
                jobs.append(Job(wl, seeds[0], steps, (v,)))
    return sorted(jobs, key=lambda j: -j.cost())


def fused_variants() -> list[Variant]:
    """Unfused against fused exact datapath, with the fake-quant shortcut they are compared
    to, for both roundings (``study fused``); the fused one also with the decay encoded with
    error feedback (``decay="feedback"``)."""
    out = []
    for r in ROUNDINGS:
        out.append(make_variant("fakequant", "mx8", r, 8))
        # the shortcut with the exact datapath's MX8 inputs: what input rounding alone costs
        out.append(make_variant("fakequant", "mx8", r, 8, inputs="mx8",
                                decay="stochastic-carry"))
        # ... and with d exact: the floor that no encoding of d can pass
        out.append(make_variant("fakequant", "mx8", r, 8, inputs="mx8-kvq"))
        for fused in (False, True):
            out.append(make_variant("exact", "mx8", r, 8, renorm="lod",
                                    decay="stochastic-carry", fused=fused))
        # the fused update with the decay encoded with error feedback by the GPU
        out.append(make_variant("exact", "mx8", r, 8, renorm="lod", decay="feedback",
                                fused=True))
    return out


def fused_plan(steps: int = 2048, seeds=(0, 1)) -> list[Job]:
    """Every workload and seed: :func:`fused_variants` in lock step (one job each)."""
    jobs = [Job(make_workload(fam, **shape), s, steps, tuple(fused_variants()))
            for fam, shape in STUDY_SHAPES.items() for s in seeds]
    return sorted(jobs, key=lambda j: -j.cost())
