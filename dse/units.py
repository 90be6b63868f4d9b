"""Design points as units of the ``hw.export`` registry, in this process and in the simulator.

A point's component is registered as ``dse_<id>`` (what is synthesized) and, for the SPU,
``dse_<id>_sim`` (the SPU with its two bank models, :class:`hw.spu_sim.SpuSim`, what the SPU
testbenches drive). The co-simulation runs the testbench in the simulator's own Python: the
runner passes ``COSIM_UNIT_MODULE`` (this module, the factories' ``__module__``) and the
points in the environment variable :data:`ENV`, and importing this module there registers
them again.
"""

from __future__ import annotations

import json
import os

from hw.export import UNITS, register_unit

from .space import DesignPoint, build_component

__all__ = ["ENV", "register", "env_value", "cosim_unit"]

#: Environment variable holding the points (a JSON list of ``DesignPoint.as_dict``).
ENV = "DSE_UNITS"


class _Factory:
    """Zero-argument factory of one point's component (``sim``: wrapped for the SPU bench)."""

    def __init__(self, point: DesignPoint, sim: bool = False):
        self.point, self.sim = point, sim

    def __call__(self):
        if self.sim:
            from hw.spu_sim import SpuSim
            return SpuSim(**dict(self.point.params))
        return build_component(self.point.kind, self.point.fmt, dict(self.point.params))


def cosim_unit(point: DesignPoint) -> str:
    """The registered name the co-simulation drives."""
    return point.unit_name + ("_sim" if point.kind == "spu" else "")


def register(point: DesignPoint) -> None:
    """Register the point's unit(s) (idempotent)."""
    if point.unit_name not in UNITS:
        register_unit(point.unit_name, _Factory(point))
    if point.kind == "spu" and cosim_unit(point) not in UNITS:
        register_unit(cosim_unit(point), _Factory(point, sim=True))


def env_value(point: DesignPoint) -> str:
    return json.dumps([point.as_dict])


def _point_of(d: dict) -> DesignPoint:
    d = dict(d)
    kind, fmt = d.pop("unit"), d.pop("format")
    return DesignPoint(kind, fmt, tuple(d.items()))


for _d in json.loads(os.environ.get(ENV, "") or "[]"):
    register(_point_of(_d))
