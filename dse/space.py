"""The design space: which RTL parameters a point may set, and the grid file that lists points.

The keys are not typed here: they are read from the RTL. A *unit kind* is

``spe``
    the SPE datapath slices of the ``hw.export`` registry (``spe_<format>``: one class per
    format, e.g. :class:`hw.spe_mx8.SpeMx8`, :class:`hw.spe_float.SpeFloat`);
``spu``
    the SPU (:class:`hw.spu.Spu`, registered as ``spu_mx8``), MX8 only.

The keys a point of a kind and format may set are the keyword parameters of that class's
constructor (:func:`design_keys`), except those of :data:`NOT_DESIGN_KEYS` and the private
test hooks (a leading ``_``). A parameter added to the RTL (``fused=...``) becomes a key
with no edit here; a key the RTL does not take is refused, naming it. Values are checked
by constructing the component: its own validation gives the message.

Grid file (YAML)::

    name: small                # names nothing on disk; shown in the report
    cosim: {vectors: 200, sim: icarus}
    study: {workload: mamba2, steps: 256, perplexity_seq_len: null}
    seed: 1                    # co-simulation and accuracy seeds (logged)
    blocks:                    # each block is a cartesian product
      - unit: spe
        format: [mx8]
        rounding: [rne, sr]
        renorm: [lod, fixed]
      - unit: spu
        rbits: [2, 4, 8]

Every error is one line naming the file, the key and the allowed values.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import itertools
import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import yaml
from amaranth.hdl import UnusedElaboratable

# Points are built to check their values and read their latency, not all elaborated.
warnings.filterwarnings("ignore", category=UnusedElaboratable)

__all__ = ["GridError", "KINDS", "NOT_DESIGN_KEYS", "DesignPoint", "DseGrid", "design_keys",
           "load_grid", "unit_classes", "build_component", "PAPER_POINT"]

#: Unit kinds of the design space.
KINDS = ("spe", "spu")
#: Constructor parameters that are not design choices: the generators' reset values (any
#: nonzero seed gives the same hardware and statistics) and the lane count (32 = one
#: sub-chunk, fixed by the DRAM column and the SPU).
NOT_DESIGN_KEYS = frozenset({"seed", "seeds", "lanes", "fmt"})
#: The paper's design (MX8, stochastic rounding, LOD renormalization; ``spe_mx8_sr``).
PAPER_POINT = {"unit": "spe", "format": "mx8", "rounding": "sr", "renorm": "lod"}

_TOP_KEYS = {"name", "cosim", "study", "seed", "blocks"}
_COSIM_KEYS = {"vectors", "sim"}
_STUDY_KEYS = {"workload", "steps", "perplexity_seq_len"}


class GridError(ValueError):
    """A grid file is wrong: one line naming the file, the key and what is allowed."""


@functools.cache
def unit_classes() -> dict[str, dict[str, type]]:
    """``{kind: {format: component class}}`` from the ``hw.export`` registry: every
    ``spe_<format>`` unit (not the ``_sr`` variants, which are the same class) and the SPU."""
    from hw.export import load_units

    units = load_units()
    spe = {}
    for name in sorted(units):
        m = re.fullmatch(r"spe_([a-z0-9]+)", name)
        if m:
            spe[m.group(1)] = type(units[name]())
    return {"spe": spe, "spu": {"mx8": type(units["spu_mx8"]())}}


def _params(cls: type) -> dict[str, inspect.Parameter]:
    sig = inspect.signature(cls.__init__)
    return {n: p for n, p in sig.parameters.items()
            if n != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def design_keys(kind: str, fmt: str) -> dict[str, object]:
    """The design keys of ``kind``/``fmt`` with their RTL defaults (constructor order)."""
    cls = unit_classes()[kind][fmt]
    return {n: p.default for n, p in _params(cls).items()
            if not n.startswith("_") and n not in NOT_DESIGN_KEYS
            and p.default is not inspect.Parameter.empty}


def build_component(kind: str, fmt: str, params: dict):
    """A fresh component of the point (the same call the registry makes, with ``params``)."""
    cls = unit_classes()[kind][fmt]
    if "fmt" in _params(cls):
        return cls(fmt, **params)
    return cls(**params)


@dataclass(frozen=True)
class DesignPoint:
    """One design: unit kind, format and every design key (RTL defaults filled in)."""

    kind: str
    fmt: str
    params: tuple       # ((key, value), ...) in constructor order

    @property
    def as_dict(self) -> dict:
        return {"unit": self.kind, "format": self.fmt, **dict(self.params)}

    @property
    def label(self) -> str:
        """Readable name, e.g. ``spe-mx8 rounding=sr renorm=lod``."""
        return " ".join([f"{self.kind}-{self.fmt}"]
                        + [f"{k}={v}" for k, v in self.params])

    @property
    def ident(self) -> str:
        """Stable short id (hash of the point): the unit's Verilog name is ``dse_<ident>``."""
        text = json.dumps(self.as_dict, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def unit_name(self) -> str:
        return f"dse_{self.ident}"

    def is_paper(self) -> bool:
        d = self.as_dict
        return all(d.get(k) == v for k, v in PAPER_POINT.items())


@dataclass(frozen=True)
class DseGrid:
    """A parsed grid: settings and the points in order (duplicates removed)."""

    name: str
    path: str
    seed: int
    vectors: int
    sim: str
    workload: str
    steps: int
    perplexity_seq_len: int | None
    points: tuple

    def settings(self) -> dict:
        """What every point's result depends on besides the point (part of its cache key)."""
        return {"seed": self.seed, "vectors": self.vectors, "sim": self.sim,
                "workload": self.workload, "steps": self.steps,
                "perplexity_seq_len": self.perplexity_seq_len}


def _fail(path, key, problem, allowed) -> GridError:
    return GridError(f"{path}: {key}: {problem} (allowed: {allowed})")


def _int(path, key, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _fail(path, key, f"{value!r} is not an integer >= {minimum}",
                    f"an integer >= {minimum}")
    return value


def _section(path, data, key, keys) -> dict:
    sec = data.get(key, {})
    if sec is None:
        sec = {}
    if not isinstance(sec, dict):
        raise _fail(path, key, "expected a mapping", ", ".join(sorted(keys)))
    unknown = sorted(set(sec) - keys)
    if unknown:
        raise _fail(path, f"{key}.{unknown[0]}", "unknown key", ", ".join(sorted(keys)))
    return sec


def _values(path, where, value) -> list:
    vals = value if isinstance(value, list) else [value]
    if not vals:
        raise _fail(path, where, "empty list", "a value or a non-empty list")
    return vals


def load_grid(path: Path | str) -> DseGrid:
    """Parse and validate a grid file; every point is built once to check its values."""
    from cosim.runner import SIMULATORS
    from quant.study.workloads import FAMILIES

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise GridError(f"{path}: cannot read ({exc.strerror}) (allowed: a grid YAML "
                        "file)") from None
    except yaml.YAMLError as exc:
        raise GridError(f"{path}: not YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise _fail(path, "(top level)", "expected a mapping", ", ".join(sorted(_TOP_KEYS)))
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise _fail(path, unknown[0], "unknown key", ", ".join(sorted(_TOP_KEYS)))
    for key in ("name", "blocks"):
        if key not in data:
            raise _fail(path, key, "missing key", ", ".join(sorted(_TOP_KEYS)))
    name = data["name"]
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
        raise _fail(path, "name", f"bad name {name!r}", "letters, digits, '_', '-', '.'")
    cosim = _section(path, data, "cosim", _COSIM_KEYS)
    study = _section(path, data, "study", _STUDY_KEYS)
    seed = _int(path, "seed", data.get("seed", 1), minimum=0)
    vectors = _int(path, "cosim.vectors", cosim.get("vectors", 200))
    sim = cosim.get("sim", "icarus")
    if sim not in SIMULATORS:
        raise _fail(path, "cosim.sim", f"unknown simulator {sim!r}", ", ".join(SIMULATORS))
    workload = study.get("workload", "mamba2")
    if workload not in FAMILIES:
        raise _fail(path, "study.workload", f"unknown workload {workload!r}",
                    ", ".join(FAMILIES))
    steps = _int(path, "study.steps", study.get("steps", 256))
    ppl = study.get("perplexity_seq_len")
    if ppl is not None:
        ppl = _int(path, "study.perplexity_seq_len", ppl, minimum=2)
    blocks = data["blocks"]
    if not isinstance(blocks, list) or not blocks:
        raise _fail(path, "blocks", "expected a non-empty list", "a list of blocks")
    classes = unit_classes()
    points, seen = [], set()
    for i, block in enumerate(blocks):
        where = f"blocks[{i}]"
        if not isinstance(block, dict):
            raise _fail(path, where, "expected a mapping", "unit, format and design keys")
        kind = block.get("unit")
        if kind not in KINDS:
            raise _fail(path, f"{where}.unit", f"{kind!r}", ", ".join(KINDS))
        formats = _values(path, f"{where}.format",
                          block.get("format", sorted(classes[kind])))
        for fmt in formats:
            if fmt not in classes[kind]:
                raise _fail(path, f"{where}.format", f"{fmt!r} has no {kind} in the RTL",
                            ", ".join(sorted(classes[kind])))
        keys = [k for k in block if k not in ("unit", "format")]
        for fmt in formats:
            allowed = design_keys(kind, fmt)
            for key in keys:
                if key not in allowed:
                    cls = classes[kind][fmt]
                    raise _fail(path, f"{where}.{key}",
                                f"not a parameter of the RTL of {kind} {fmt} "
                                f"({cls.__module__}.{cls.__name__})",
                                ", ".join(["format"] + list(allowed)) or "format")
        value_lists = [_values(path, f"{where}.{k}", block[k]) for k in keys]
        for fmt in formats:
            defaults = design_keys(kind, fmt)
            for combo in itertools.product(*value_lists):
                params = dict(defaults)
                params.update(zip(keys, combo))
                given = dict(zip(keys, combo))
                try:
                    build_component(kind, fmt, given)
                except (ValueError, TypeError) as exc:
                    text = ", ".join(f"{k}={v!r}" for k, v in given.items())
                    raise GridError(f"{path}: {where}: {kind} {fmt} {text}: the RTL refuses "
                                    f"it ({exc})") from None
                point = DesignPoint(kind, fmt, tuple(params.items()))
                if point.ident not in seen:
                    seen.add(point.ident)
                    points.append(point)
    return DseGrid(name=name, path=str(path), seed=seed, vectors=vectors, sim=sim,
                   workload=workload, steps=steps, perplexity_seq_len=ppl,
                   points=tuple(points))
