"""Small pure jobs for the executor checks (tests/test_dse_ray.py, ``python -m dse.bench``)."""

from __future__ import annotations

__all__ = ["cosim_job", "square"]


def square(x: int) -> int:
    """A trivial job (the fast Ray check)."""
    if x < 0:
        raise ValueError(f"x={x}: negative (allowed: an integer >= 0)")
    return x * x


def cosim_job(job: tuple) -> dict:
    """``(unit, module, name, sim, seed, vectors)`` -> the run's deterministic record (its
    verdict and counters; not its wall times), via :func:`cosim.runner.run_cosim`."""
    from cosim.runner import run_cosim

    unit, module, name, sim, seed, vectors = job
    r = run_cosim(unit, module, name=name, sim=sim, seed=seed, vectors=vectors, record=False,
                  check=False)
    return {"name": name, "unit": unit, "sim": sim, "seed": r.seed, "passed": r.passed,
            "tests": r.tests, "failed": r.failed, "vectors": r.vectors,
            "mismatches": r.mismatches, "cycles": r.cycles}
