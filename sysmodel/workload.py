"""Workload description: models and their generation-step operators.

A model is a stack of layer groups (``retnet``, ``gla``, ``hgrn2``, ``mamba2``, ``attention``).
:func:`step_operators` turns it into the operators one generation step runs on one GPU of a
tensor-parallel group: each operator knows its shape and its work (bytes, operations), not how
long it takes -- that is the devices' business (:mod:`sysmodel.gpu`, :mod:`sysmodel.pim`).

Tensor parallelism (docs/design.md §5): projections that produce heads or FFN channels are split by
output channel, the projections after them by input channel, followed by an all-reduce; heads
are dealt to GPUs, so a GPU holds ``ceil(heads / gpus)`` of them. Norms and residuals act on
the full hidden vector on every GPU. The LM head is split by vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .config import CONFIG_DIR, ConfigError, Section
from .hardware import ceil_div

ACT_BYTES = 2             # fp16 activations and weights
LAYER_KINDS = ("retnet", "gla", "hgrn2", "mamba2", "attention")
FFN_KINDS = ("gelu", "relu", "swiglu", "geglu")
CATEGORIES = ("state_update", "attention", "gemm", "other", "comm")

#: Element-wise operations per element of the norms / activations (a modelling constant of
#: the workload: mean, variance, scale, shift ~ 5 ops; activation functions ~ 4 ops).
NORM_OPS = 5
ACT_OPS = 4


@dataclass(frozen=True)
class LayerSpec:
    """A group of identical layers.

    Members
    -------
    kind : str
        One of :data:`LAYER_KINDS`.
    count : int
        Number of such layers.
    heads, dim_head, dim_state : int
        Head count and state shape (``dim_state`` 0 for attention layers).
    ffn : int
        FFN inner width (0: no FFN).
    """

    kind: str
    count: int
    heads: int
    dim_head: int
    dim_state: int = 0
    ffn: int = 0
    ffn_kind: str = "gelu"
    gate_rank: int = 0
    ngroups: int = 0
    conv_width: int = 0
    input_mult: int = 1

    @property
    def gated_ffn(self) -> bool:
        """Whether the FFN has a gate (two up projections)."""
        return self.ffn_kind in ("swiglu", "geglu")


@dataclass(frozen=True)
class ModelSpec:
    """A model: hidden size, vocabulary and its layer groups."""

    name: str
    hidden: int
    vocab: int
    layers: tuple
    kernels: tuple = ()

    def weight_params(self) -> int:
        """Parameters of all layers and the LM head (embedding tied or not counted twice)."""
        total = self.vocab * self.hidden
        for op, count in step_operators(self, batch=1, gpus=1):
            if isinstance(op, Gemm):
                total += op.k * op.n * count
        return total

    def state_values(self, batch: int) -> int:
        """Recurrent-state values of all layers."""
        return sum(batch * ly.count * ly.heads * ly.dim_head * ly.dim_state
                   for ly in self.layers if ly.kind != "attention")

    def kv_values(self, batch: int, kv_len: int) -> int:
        """KV-cache values of all attention layers at ``kv_len`` tokens."""
        return sum(2 * batch * ly.count * ly.heads * ly.dim_head * kv_len
                   for ly in self.layers if ly.kind == "attention")


# -- operators --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Gemm:
    """``(m x k) @ (k x n)`` with fp16 weights (``k x n``) and activations."""

    name: str
    m: int
    k: int
    n: int
    category: str = "gemm"


@dataclass(frozen=True)
class Elementwise:
    """A bandwidth-bound element-wise operator."""

    name: str
    bytes_read: int
    bytes_written: int
    ops: int
    category: str = "other"


@dataclass(frozen=True)
class StateUpdate:
    """``S = d * S + k v^T; y = S^T q`` for ``batch x heads`` states of dim_head x dim_state."""

    name: str
    batch: int
    heads: int
    dim_head: int
    dim_state: int
    vector_gate: bool
    category: str = "state_update"

    @property
    def values(self) -> int:
        """State values touched."""
        return self.batch * self.heads * self.dim_head * self.dim_state

    @property
    def input_bytes(self) -> int:
        """fp16 bytes of d (per element or one per head), q, k and v."""
        gate = self.dim_head if self.vector_gate else 1
        per_head = gate + 2 * self.dim_head + self.dim_state
        return self.batch * self.heads * per_head * ACT_BYTES

    @property
    def output_bytes(self) -> int:
        """fp16 bytes of y."""
        return self.batch * self.heads * self.dim_state * ACT_BYTES


@dataclass(frozen=True)
class Attention:
    """Decode attention of one new token against a KV cache of the step's length."""

    name: str
    batch: int
    heads: int
    dim_head: int
    category: str = "attention"


@dataclass(frozen=True)
class AllReduce:
    """A ring all-reduce of ``bytes`` over the tensor-parallel group."""

    name: str
    bytes: int
    category: str = "comm"


def _norm(name: str, rows: int, width: int) -> Elementwise:
    n = rows * width
    return Elementwise(name, n * ACT_BYTES, n * ACT_BYTES, NORM_OPS * n)


def _pointwise(name: str, rows: int, width_in: int, width_out: int,
               ops_per_elem: int = ACT_OPS, category: str = "other") -> Elementwise:
    return Elementwise(name, rows * width_in * ACT_BYTES, rows * width_out * ACT_BYTES,
                       ops_per_elem * rows * width_in, category)


def _ffn(ly: LayerSpec, b: int, h: int, tp: int) -> list:
    if not ly.ffn:
        return []
    f = ceil_div(ly.ffn, tp)
    up = 2 * f if ly.gated_ffn else f
    ops = [_norm("ffn_norm", b, h), Gemm("ffn_up", b, h, up),
           _pointwise("ffn_act", b, up, f), Gemm("ffn_down", b, f, h)]
    if tp > 1:
        ops.append(AllReduce("ffn_allreduce", b * h * ACT_BYTES))
    ops.append(_pointwise("ffn_residual", b, 2 * h, h, 1))
    return ops


def _layer_ops(ly: LayerSpec, b: int, h: int, tp: int) -> list:
    """Operators of one layer of ``ly`` for batch ``b`` on one of ``tp`` GPUs."""
    hs = ceil_div(ly.heads, tp)
    dk, dv = ly.dim_head, ly.dim_state
    ops: list = []
    out_allreduce = [AllReduce("out_allreduce", b * h * ACT_BYTES)] if tp > 1 else []
    if ly.kind == "attention":
        h_in = ly.input_mult * h
        width = hs * dk
        if ly.input_mult > 1:
            ops.append(_pointwise("concat_embedding", b, h_in, h_in, 0))
        ops += [_norm("attn_norm", b, h_in), Gemm("qkv_proj", b, h_in, 3 * width),
                _pointwise("rotary", b, 2 * width, 2 * width, 6),
                Attention("attention", b, hs, dk), Gemm("o_proj", b, width, h),
                *out_allreduce, _pointwise("attn_residual", b, 2 * h, h, 1)]
        return ops + _ffn(ly, b, h, tp)
    if ly.kind == "mamba2":
        groups = ly.ngroups                      # B/C groups are replicated on every GPU
        d_inner = hs * dv
        conv_ch = d_inner + 2 * groups * dk
        ops += [_norm("in_norm", b, h),
                Gemm("in_proj", b, h, 2 * d_inner + 2 * groups * dk + hs),
                Elementwise("conv1d", b * conv_ch * ly.conv_width * ACT_BYTES,
                            b * conv_ch * ly.conv_width * ACT_BYTES,
                            2 * ly.conv_width * b * conv_ch),
                _pointwise("conv_act_dt", b, conv_ch + hs, conv_ch + hs),
                StateUpdate("state_update", b, hs, dk, dv, vector_gate=False),
                _pointwise("gate_norm", b, 2 * d_inner, d_inner, NORM_OPS + ACT_OPS),
                Gemm("out_proj", b, d_inner, h), *out_allreduce,
                _pointwise("residual", b, 2 * h, h, 1)]
        return ops
    qk = hs * dk
    v = hs * dv
    ops.append(_norm("in_norm", b, h))
    if ly.kind == "retnet":
        ops += [Gemm("qkvg_proj", b, h, 2 * qk + 2 * v),
                _pointwise("xpos", b, 2 * qk, 2 * qk, 6),
                StateUpdate("state_update", b, hs, dk, dv, vector_gate=False)]
    elif ly.kind == "gla":
        ops += [Gemm("qkvg_proj", b, h, 2 * qk + 2 * v),
                Gemm("gate_lowrank_a", b, h, ly.gate_rank),
                Gemm("gate_lowrank_b", b, ly.gate_rank, qk),
                _pointwise("gate_logsigmoid", b, qk, qk),
                StateUpdate("state_update", b, hs, dk, dv, vector_gate=True)]
    elif ly.kind == "hgrn2":
        ops += [Gemm("qfi_proj", b, h, 2 * qk + v),
                _pointwise("forget_gate", b, qk, 2 * qk),
                StateUpdate("state_update", b, hs, dk, dv, vector_gate=True)]
    else:
        raise ValueError(f"unknown layer kind {ly.kind!r} (allowed: {', '.join(LAYER_KINDS)})")
    ops += [_pointwise("out_norm_gate", b, 2 * v, v, NORM_OPS + ACT_OPS),
            Gemm("o_proj", b, v, h), *out_allreduce, _pointwise("residual", b, 2 * h, h, 1)]
    return ops + _ffn(ly, b, h, tp)


@lru_cache(maxsize=256)
def step_operators(model: ModelSpec, batch: int, gpus: int) -> tuple:
    """Operators of one generation step on one GPU, as ``(operator, repeat count)`` pairs.

    Parameters
    ----------
    model : ModelSpec
        The model.
    batch : int
        Requests decoded together (one new token each).
    gpus : int
        Tensor-parallel group size.
    """
    h = model.hidden
    out = [(Elementwise("embedding", batch * h * ACT_BYTES, batch * h * ACT_BYTES, 0), 1)]
    for ly in model.layers:
        out += [(op, ly.count) for op in _layer_ops(ly, batch, h, gpus)]
    out += [(_norm("final_norm", batch, h), 1),
            (Gemm("lm_head", batch, h, ceil_div(model.vocab, gpus)), 1)]
    return tuple(out)


#: Offloadable categories with a kernel list of their own in ``kernels.pim_offload``.
PIM_CATEGORIES = ("state_update", "attention")


def _kernel_list(model: ModelSpec, scope: str) -> tuple:
    return dict(model.kernels).get(scope, ())


def step_kernels(model: ModelSpec, pim: frozenset = frozenset()) -> dict:
    """Kernels one decode step launches on each GPU, per time category.

    Parameters
    ----------
    model : ModelSpec
        The model, with the kernel lists of ``models.yaml`` (``kernels:``).
    pim : frozenset
        Categories run in PIM: their GPU kernels are replaced by ``kernels.pim_offload``'s.
    """
    counts = {c: 0 for c in CATEGORIES}
    for ly in model.layers:
        present = set()
        for _, cat in _kernel_list(model, ly.kind):
            present.add(cat)
            if cat not in pim:
                counts[cat] += ly.count
        for cat in sorted(present & set(pim)):
            for _, pcat in _kernel_list(model, f"pim:{cat}"):
                counts[pcat] += ly.count
    for _, cat in _kernel_list(model, "model"):
        counts[cat] += 1
    return counts


def _load_kernels(top: Section) -> tuple:
    """``kernels:`` of models.yaml as ``((scope, ((name, category), ...)), ...)``."""
    sec = top.section("kernels")
    sec.check_keys([*LAYER_KINDS, "model", "pim_offload"])
    launch_cats = [c for c in CATEGORIES if c != "comm"]

    def one_list(parent: Section, key: str, cats: list) -> tuple:
        raw = parent.raw(key)
        allowed = f"a list of {{kernel_name: category}} with category one of {', '.join(cats)}"
        if not isinstance(raw, list) or not raw:
            raise parent.fail(key, f"expected a non-empty list, got {raw!r}", allowed)
        out = []
        for i, item in enumerate(raw):
            if not isinstance(item, dict) or len(item) != 1:
                raise parent.fail(f"{key}[{i}]", f"expected one name: category, got {item!r}",
                                  allowed)
            entry = Section(item, parent.file, f"{parent._key(key)}[{i}]")
            name = str(next(iter(item)))
            out.append((name, entry.string(name, cats)))
        return tuple(out)

    scopes = [(scope, one_list(sec, scope, launch_cats)) for scope in (*LAYER_KINDS, "model")]
    pim = sec.section("pim_offload")
    pim.check_keys(PIM_CATEGORIES)
    scopes += [(f"pim:{cat}", one_list(pim, cat, [cat])) for cat in PIM_CATEGORIES]
    return tuple(scopes)


# -- loading ----------------------------------------------------------------------------------
_LAYER_KEYS = {
    "retnet": (["kind", "count", "heads", "dim_head", "dim_state", "ffn", "ffn_kind"], []),
    "gla": (["kind", "count", "heads", "dim_head", "dim_state", "ffn", "ffn_kind",
             "gate_rank"], []),
    "hgrn2": (["kind", "count", "heads", "dim_head", "dim_state", "ffn", "ffn_kind"], []),
    "mamba2": (["kind", "count", "heads", "dim_head", "dim_state", "ngroups", "conv_width"], []),
    "attention": (["kind", "count", "heads", "dim_head", "input_mult", "ffn", "ffn_kind"], []),
}


def _load_layer(sec: Section) -> LayerSpec:
    kind = sec.string("kind", LAYER_KINDS)
    required, optional = _LAYER_KEYS[kind]
    sec.check_keys(required, optional)
    values = {"kind": kind}
    for key in required[1:]:
        if key == "ffn_kind":
            values[key] = sec.string(key, FFN_KINDS)
        elif key == "input_mult":
            values[key] = sec.integer(key, minimum=1, maximum=4)
        else:
            values[key] = sec.integer(key, minimum=1)
    return LayerSpec(**values)


def load_models(path: Path | str = CONFIG_DIR / "models.yaml") -> dict:
    """Load every model of ``path`` into :class:`ModelSpec` objects keyed by name."""
    return _load_models_cached(str(path))


@lru_cache(maxsize=4)
def _load_models_cached(path: str) -> dict:
    top = Section.from_file(path)
    top.check_keys(["models", "kernels"])
    kernels = _load_kernels(top)
    models = top.section("models")
    out = {}
    for name in models.keys():
        m = models.section(name)
        m.check_keys(["hidden", "vocab", "layers"])
        raw = m.raw("layers")
        if not isinstance(raw, list) or not raw:
            raise m.fail("layers", "expected a non-empty list", "a list of layer groups")
        layers = tuple(_load_layer(Section(item, m.file, f"{m.path}.layers[{i}]"))
                       if isinstance(item, dict) else _bad_layer(m, i)
                       for i, item in enumerate(raw))
        out[name] = ModelSpec(name=name, hidden=m.integer("hidden", minimum=1),
                              vocab=m.integer("vocab", minimum=1), layers=layers,
                              kernels=kernels)
    return out


def _bad_layer(m: Section, i: int):
    raise m.fail(f"layers[{i}]", "expected a mapping", "kind: ... with the layer's keys")


def get_model(name: str, models: dict | None = None) -> ModelSpec:
    """Model by name, with an error listing the known ones."""
    models = load_models() if models is None else models
    if name not in models:
        raise ConfigError(f"unknown model {name!r} (allowed: {', '.join(models)})")
    return models[name]
