"""Variants of the state update and the lock-step runner that measures them.

A *variant* is one way of computing ``S_t = d_t * S_{t-1} + k_t v_t^T, y_t = S_t^T q_t``
(``*`` broadcasts ``d`` along ``dim_state``):

``fp32``
    The reference: fp32 arithmetic, fp32 state (``S`` starts at zero).
``fakequant``
    The usual evaluation shortcut (formats of :mod:`quant.formats`, and ``mx8c``: MX8 whose
    rounding carries into the exponent instead of saturating, see :func:`encode_mx8`): the
    update in fp32, the state rounded when stored,
    ``S_t = Q(d_t * S_{t-1} + k_t v_t^T)`` with ``Q = quant.formats.quantize`` (groups along
    ``dim_head``), and ``y_t = S_t^T q_t`` in fp32 from the stored state. Inputs are fp32
    (``inputs="fp32"``) or, to separate input quantization from datapath rounding, rounded to
    MX8 exactly as the exact datapath receives them (``inputs="mx8"``), or ``k, v, q`` so
    rounded and ``d`` left in fp32 (``inputs="mx8-kvq"``: not something the GPU can send, a
    diagnostic of what any encoding of ``d`` can still gain).
``exact``
    The SPE's bit-exact datapath (``quant.spe.state_update``): the state is MX8 and is rounded
    inside both multipliers and the adder. Each step the GPU sends ``k, v, q`` as MX8 rounded to
    nearest, and ``d`` encoded by ``decay`` (below); ``y`` is the exact dot-product partials
    summed in float64 (what the GPU accumulates).

``decay`` — how the GPU encodes ``d`` to MX8: ``nearest`` (the spec's quantizer: a magnitude
that rounds past 63 *saturates*, so any decay above 63/64 becomes 63/64), ``stochastic``
(the spec's quantizer with 8-bit stochastic rounding), ``nearest-carry`` / ``stochastic-carry``
(the same, but a magnitude that rounds past 63 carries into the next exponent instead of
saturating: ``d`` just below 1 becomes exactly 1 — a valid MX8 encoding with a higher group
exponent, produced by the GPU's encoder; the SPE is unchanged), ``feedback``
(``nearest-carry`` with error feedback: the GPU adds the rounding residual of the same decay
at the previous step before it rounds, ``t = d_t + r_{t-1}``, ``Q(t)`` sent, ``r_t = t - Q(t)``
kept in fp32, one value per decay; a first-order noise shaper, so that the sum of the sent
decays over any window stays within one rounding of the true sum; :class:`DecayEncoder`).

Error metric (one formula, :func:`rel_err`): for each state (lead index ``l`` = batch x head)
``e_l = ||X_l - X_l^ref||_F / ||X_l^ref||_F`` with ``X = S_t`` (``dim_state x dim_head``)
or ``X = y_t`` (``dim_state``); the reported value is the mean of ``e_l`` over ``l``.

Seeds: the inputs come from the workload seed; each variant's rounding bits come from
:func:`derive_seed` ``(seed, variant key, purpose)`` (a CRC of the text), logged in the output.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import asdict, dataclass, field

import torch

from .. import formats, mx8, spe
from ..rng import LFSR_WIDTH, SITES, SPERandom, TorchBits
from .workloads import Inputs, InputStream, Workload

__all__ = ["DATAPATHS", "FORMATS", "CARRY_FORMAT", "ROUNDINGS", "RENORMS", "RNGS",
           "DECAY_ENCODINGS", "INPUTS", "Variant", "make_variant", "derive_seed", "encode_mx8",
           "encode_decay", "DecayEncoder", "rel_err", "make_stepper", "run", "RunResult"]

DATAPATHS = ("fp32", "fakequant", "exact")
FORMATS = ("fp16", "bf16", "int8", "e4m3", "e5m2", "mx8")
#: fake-quant only: MX8 with rounding carry (a proposed change of the spec, see encode_mx8)
CARRY_FORMAT = "mx8c"
ROUNDINGS = ("nearest", "stochastic")
RENORMS = spe.RENORMS
RNGS = ("torch", "lfsr")
DECAY_ENCODINGS = ("nearest", "stochastic", "nearest-carry", "stochastic-carry", "feedback")
INPUTS = ("fp32", "mx8", "mx8-kvq")
#: random bits of the GPU-side stochastic encoding of d
DECAY_RBITS = 8


def _choice(name: str, val, allowed) -> None:
    if val not in allowed:
        raise ValueError(f"{name} must be one of {','.join(map(str, allowed))}, not {val!r}")


@dataclass(frozen=True)
class Variant:
    """One arithmetic variant (build with :func:`make_variant`, which validates)."""

    datapath: str
    fmt: str = "fp32"
    rounding: str = "nearest"
    rbits: int = 8
    renorm: str = "-"
    rng: str = "-"
    decay: str = "-"
    inputs: str = "fp32"
    fused: bool = False

    @property
    def key(self) -> str:
        """Stable text label (also the seed-derivation key)."""
        if self.datapath == "fp32":
            return "fp32"
        r = "SR" + str(self.rbits) if self.rounding == "stochastic" else "RTN"
        parts = [self.datapath, self.fmt, r]
        if self.datapath == "exact":
            parts += [self.renorm, self.rng, "d=" + self.decay]
            if self.fused:
                parts.append("fused")
        elif self.inputs == "mx8":
            parts += ["in=" + self.inputs, "d=" + self.decay]
        elif self.inputs != "fp32":
            parts += ["in=" + self.inputs]
        return "/".join(parts)

    def describe(self) -> dict:
        return asdict(self)


def make_variant(datapath: str, fmt: str = "mx8", rounding: str = "nearest", rbits: int = 8,
                 *, renorm: str = "lod", rng: str = "torch", decay: str = "nearest",
                 inputs: str = "fp32", fused: bool = False) -> Variant:
    """Validate and canonicalise a variant (options that do not apply are set to ``"-"``;
    ``fused``: the SPE's fused update, ``quant.spe.SPEConfig(fused=True)``, exact only)."""
    _choice("datapath", datapath, DATAPATHS)
    if not isinstance(fused, bool):
        raise ValueError(f"fused must be a bool, not {fused!r}")
    if fused and datapath != "exact":
        raise ValueError(f"fused applies to datapath exact only (the SPE's fused update), "
                         f"not {datapath!r}")
    if datapath == "fp32":
        return Variant("fp32")
    _choice("format", fmt, ("fp32",) + FORMATS + (CARRY_FORMAT,))
    _choice("rounding", rounding, ROUNDINGS)
    max_r = spe.ADD_FRAC_BITS if datapath == "exact" else 16
    if isinstance(rbits, bool) or not isinstance(rbits, int) or not 1 <= rbits <= max_r:
        raise ValueError(f"rbits must be an integer in 1..{max_r} for datapath {datapath}, "
                         f"not {rbits!r}")
    if rounding == "nearest":
        rbits = 8
    _choice("decay", decay, DECAY_ENCODINGS)
    if datapath == "exact":
        if fmt != "mx8":
            raise ValueError(f"format must be mx8 for datapath exact (the SPE computes on MX8), "
                             f"not {fmt!r}")
        _choice("renorm", renorm, RENORMS)
        _choice("rng", rng, RNGS)
        if fused and renorm != "lod":
            raise ValueError(f"fused needs renorm lod, not {renorm!r}")
        return Variant("exact", "mx8", rounding, rbits, renorm, rng, decay, "mx8", fused)
    _choice("inputs", inputs, INPUTS)
    return Variant("fakequant", fmt, rounding, rbits, "-", "-",
                   decay if inputs == "mx8" else "-", inputs)


def derive_seed(seed: int, key: str, purpose: str) -> int:
    """A 31-bit seed for one random stream of a variant (stable across runs and machines)."""
    return zlib.crc32(f"{int(seed)}|{key}|{purpose}".encode()) & 0x7FFFFFFF


# --------------------------------------------------------------------------------------------
# Input encoding (what the GPU sends to the SPE)
# --------------------------------------------------------------------------------------------

def encode_mx8(x: torch.Tensor, rounding: str, rbits: int, rng=None, *,
               carry: bool = False) -> mx8.MX8:
    """MX8 encoding as the GPU's encoder does it: the spec's quantizer with saturation
    (``carry=False``) or with rounding carry (``mx8.encode(..., overflow="carry")``).
    ``rng``: a :class:`quant.rng.RandomSource` (stochastic rounding only)."""
    rand = None if rounding == "nearest" else rng.draw(tuple(x.shape), rbits)
    return mx8.encode(x, rounding, rbits=rbits, rng=rand,
                      overflow="carry" if carry else "saturate")


def encode_decay(d: torch.Tensor, mode: str, rng=None) -> mx8.MX8:
    """Encode the decay ``d`` to MX8 as the GPU does, one step without memory (modes: see the
    module docstring; ``feedback`` keeps a residual across steps: :class:`DecayEncoder`)."""
    _choice("decay", mode, tuple(m for m in DECAY_ENCODINGS if m != "feedback"))
    rounding = "stochastic" if mode.startswith("stochastic") else "nearest"
    return encode_mx8(d, rounding, DECAY_RBITS, rng, carry=mode.endswith("carry"))


class DecayEncoder:
    """The GPU's encoder of the decays of one state, step after step: :func:`encode_decay`,
    or (``feedback``) nearest with carry of ``d`` plus the previous step's residual."""

    def __init__(self, mode: str, rng=None):
        _choice("decay", mode, DECAY_ENCODINGS)
        self.mode, self.rng = mode, rng
        self.residual: torch.Tensor | None = None

    def reset(self) -> None:
        """Forget the residual (a new sequence: the state restarts)."""
        self.residual = None

    def __call__(self, d: torch.Tensor) -> mx8.MX8:
        if self.mode != "feedback":
            return encode_decay(d, self.mode, self.rng)
        if self.residual is not None and self.residual.shape != d.shape:
            raise ValueError(f"decay feedback: decays of shape {tuple(d.shape)} after "
                             f"{tuple(self.residual.shape)} (reset the encoder for a new "
                             f"stream)")
        t = d if self.residual is None else d + self.residual
        out = encode_mx8(t, "nearest", DECAY_RBITS, None, carry=True)
        self.residual = t - mx8.decode(out)
        return out


def encode_inputs(inp: Inputs, decay: DecayEncoder) -> tuple[mx8.MX8, ...]:
    """(d, k, v, q) as MX8: ``d`` by the state's :class:`DecayEncoder`, the others rounded to
    nearest."""
    return decay(inp.d), mx8.encode(inp.k), mx8.encode(inp.v), mx8.encode(inp.q)


# --------------------------------------------------------------------------------------------
# Steppers
# --------------------------------------------------------------------------------------------

def fp32_update(S: torch.Tensor, inp: Inputs) -> torch.Tensor:
    """``d * S + k v^T`` in fp32, state layout ``(L, dim_state, dim_head)``."""
    return inp.d[:, None, :] * S + inp.v[:, :, None] * inp.k[:, None, :]


def readout(S: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """``y = S^T q`` in the brief's terms: ``(L, dim_state)``."""
    return torch.bmm(S, q[:, :, None])[:, :, 0]


class _FloatStepper:
    """fp32 reference and fake-quant: ``S = Q(d * S + k v^T)``, ``y`` from the stored state."""

    def __init__(self, wl: Workload, v: Variant, seed: int):
        self.v = v
        self.S = torch.zeros(wl.lead, wl.dim_state, wl.dim_head)
        self.src = TorchBits(derive_seed(seed, v.key, "state"))
        self.dec = DecayEncoder(v.decay, TorchBits(derive_seed(seed, v.key, "decay"))) \
            if v.inputs == "mx8" else None

    def step(self, inp: Inputs) -> torch.Tensor:
        v = self.v
        if v.inputs == "mx8":
            inp = Inputs(*(mx8.decode(t) for t in encode_inputs(inp, self.dec)))
        elif v.inputs == "mx8-kvq":
            inp = Inputs(inp.d, *(mx8.decode(mx8.encode(t)) for t in (inp.k, inp.v, inp.q)))
        S = fp32_update(self.S, inp)
        if v.fmt == CARRY_FORMAT:
            S = mx8.decode(encode_mx8(S, v.rounding, v.rbits, self.src, carry=True))
        elif v.datapath == "fakequant":
            S = formats.quantize(S, v.fmt, v.rounding, rbits=v.rbits, rng=self.src)
        self.S = S
        return readout(S, inp.q)

    def state(self) -> torch.Tensor:
        return self.S


class _ExactStepper:
    """The SPE datapath on an MX8 state (``quant.spe.state_update``)."""

    def __init__(self, wl: Workload, v: Variant, seed: int):
        self.v = v
        self.cfg = spe.SPEConfig(v.rounding, v.rbits, v.renorm, v.fused)
        self.S = mx8.encode(torch.zeros(wl.lead, wl.dim_state, wl.dim_head))
        base = derive_seed(seed, v.key, "state")
        if v.rng == "torch":
            self.rng = SPERandom.torch(base)
        else:
            mod = (1 << LFSR_WIDTH) - 1
            self.rng = SPERandom.lfsr({s: (base + 0x9E3779B1 * (i + 1)) % mod + 1
                                       for i, s in enumerate(SITES)})
        self.dec = DecayEncoder(v.decay, TorchBits(derive_seed(seed, v.key, "decay")))

    def step(self, inp: Inputs) -> torch.Tensor:
        d, k, vv, q = encode_inputs(inp, self.dec)
        out = spe.state_update(self.S, d, k, vv, q, self.cfg, self.rng)
        self.S = out.state
        return out.y

    def state(self) -> torch.Tensor:
        return mx8.decode(self.S)


def make_stepper(wl: Workload, v: Variant, seed: int):
    """A stepper object: ``step(inputs) -> y``, ``state() -> S`` (float)."""
    return (_ExactStepper if v.datapath == "exact" else _FloatStepper)(wl, v, seed)


# --------------------------------------------------------------------------------------------
# Runner
# --------------------------------------------------------------------------------------------

def rel_err(x: torch.Tensor, ref: torch.Tensor) -> float:
    """Mean over the leading index of ``||x_l - ref_l||_F / ||ref_l||_F`` (float64)."""
    x = x.to(torch.float64).flatten(1)
    ref = ref.to(torch.float64).flatten(1)
    return float(((x - ref).norm(dim=1) / ref.norm(dim=1)).mean())


@dataclass
class RunResult:
    """Errors of each variant at the recorded steps (1-based step numbers)."""

    workload: Workload
    seed: int
    steps: list[int]
    variants: list[Variant]
    state_err: dict[str, list[float]] = field(default_factory=dict)
    output_err: dict[str, list[float]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def at(self, key: str, step: int) -> tuple[float, float]:
        i = self.steps.index(step)
        return self.state_err[key][i], self.output_err[key][i]


def record_steps(steps: int, every: int, extra=()) -> list[int]:
    """Steps at which errors are recorded: multiples of ``every``, ``extra`` and the last."""
    pts = set(range(every, steps + 1, every)) | {s for s in extra if 1 <= s <= steps} | {steps}
    return sorted(pts)


def run(wl: Workload, variants: list[Variant], steps: int, seed: int, *,
        every: int = 16, extra=(2048,)) -> RunResult:
    """Run the fp32 reference and ``variants`` in lock step on one input stream."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, not {steps!r}")
    stream = InputStream(wl, seed)
    ref = make_stepper(wl, Variant("fp32"), seed)
    steppers = {v.key: make_stepper(wl, v, seed) for v in variants}
    rec = record_steps(steps, every, extra)
    res = RunResult(wl, seed, rec, list(variants),
                    {k: [] for k in steppers}, {k: [] for k in steppers},
                    {k: 0.0 for k in steppers})
    rec_set = set(rec)
    for t in range(1, steps + 1):
        inp = stream.next()
        y_ref = ref.step(inp)
        for key, st in steppers.items():
            t0 = time.perf_counter()
            y = st.step(inp)
            res.seconds[key] += time.perf_counter() - t0
            if t in rec_set:
                res.state_err[key].append(rel_err(st.state(), ref.state()))
                res.output_err[key].append(rel_err(y, y_ref))
    return res
