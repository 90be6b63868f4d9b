"""Route the generation step of ``transformers``' Mamba-2 through a quantized state update.

``transformers.models.mamba2.modeling_mamba2.Mamba2Mixer.forward`` runs, for every single-token
step with a cache, the module-level function ``mamba2_selective_state_update(state, x, dt, A,
B, C, D, dt_bias=..., dt_softplus=True)``::

    dA = exp(softplus(dt + dt_bias) * A)            (B, H, P, N), constant over P and N
    state = state * dA + (dt * B) x^T                state (B, H, P, N), P = head_dim,
    y = state @ C + D x                                                  N = d_state

:func:`quantized_mamba2` is a context manager that replaces that function (module attribute,
restored on exit) by a :class:`QuantizedStep`. Mapping to the brief's terms: Mamba-2's state
``(head_dim P, d_state N)`` *is* the SPE layout ``(dim_state, dim_head)`` — the SPE contracts
over ``d_state`` (``y = S^T q`` with ``q = C``) and groups run along it, so

    d = dA (per head, broadcast over N)    k = B (N)    v = dt * x (P)    q = C (N)

and the SPE needs ``N`` a multiple of 32 and ``P`` a multiple of 16 (MX8 groups of ``v``).

* ``datapath="exact"``: the step is ``quant.spe.state_update`` on an MX8 state (k, v, q rounded
  to nearest by the GPU, d by ``decay``); ``y`` is the SPE's exact partials summed in float64.
  The MX8 state is kept per cache tensor; the fp32 cache holds its decoded value. A state the
  hook did not write (the fp32 prefill's final state) is rounded to MX8 (nearest) when it
  enters the PIM.
* ``datapath="fakequant"``: the original arithmetic with the new state rounded to ``fmt``
  (groups along ``N``) before it is stored and read out; ``fmt="fp32"`` reproduces the
  unpatched model bit for bit.

The prefill (``seq_len > 1``, chunked scan) is not touched: it runs on the GPU in fp32.
:func:`stepwise_nll` feeds a sequence one token at a time so every token after the prompt goes
through the quantized step (a perplexity evaluation of the generation path).
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F

from .. import formats, mx8, spe
from ..rng import SPERandom, TorchBits
from .runner import DecayEncoder, Inputs, derive_seed, encode_inputs, make_variant

__all__ = ["QuantizedStep", "quantized_mamba2", "stepwise_nll", "tiny_mamba2"]


class QuantizedStep:
    """Drop-in replacement of ``mamba2_selective_state_update`` (see the module docstring)."""

    def __init__(self, datapath: str = "exact", fmt: str = "mx8", rounding: str = "stochastic",
                 rbits: int = 8, *, renorm: str = "lod", decay: str = "nearest", seed: int = 0,
                 fused: bool = False):
        self.variant = make_variant(datapath, fmt, rounding, rbits, renorm=renorm, decay=decay,
                                    fused=fused)
        v = self.variant
        self.seed = seed
        self.src = TorchBits(derive_seed(seed, v.key, "state"))
        self.dsrc = TorchBits(derive_seed(seed, v.key, "decay"))
        if v.datapath == "exact":
            self.cfg = spe.SPEConfig(v.rounding, v.rbits, v.renorm, v.fused)
            self.rng = SPERandom.torch(derive_seed(seed, v.key, "state"))
        self._held: dict[int, tuple[mx8.MX8, torch.Tensor]] = {}
        # the GPU's decay encoder of each layer's state (its residual with ``feedback``); all
        # draw their random bits from ``dsrc``, in call order
        self._dec: dict[int, DecayEncoder] = {}
        self.calls = 0

    def __call__(self, state, hidden_states, dt, A, B, C, D=None, dt_bias=None,
                 dt_softplus=False, z=None, **kwargs):
        self.calls += 1
        batch_size, num_heads, head_dim = hidden_states.shape
        num_groups = B.shape[1]
        state_size = B.shape[-1]
        if dt_bias is not None:
            dt = dt + dt_bias.to(dt.dtype)
        if dt_softplus:
            dt = F.softplus(dt)
        dt = dt[..., None]
        dA = torch.exp(dt.float() * A.float()).to(device=state.device)
        B = B.reshape(batch_size, num_groups, 1, state_size)
        B = B.expand(batch_size, num_groups, num_heads // num_groups, state_size).contiguous()
        B = B.reshape(batch_size, num_heads, 1, state_size)
        C = C.reshape(batch_size, num_groups, 1, state_size)
        C = C.expand(batch_size, num_groups, num_heads // num_groups, state_size).contiguous()
        C = C.reshape(batch_size, num_heads, state_size)
        if self.variant.datapath == "exact":
            out = self._exact(state, hidden_states, dt, dA, B, C)
        else:
            dB = dt * B
            dBx = (dB * hidden_states[..., None]).to(device=state.device)
            ssm_states = state * dA + dBx
            ssm_states = formats.quantize(ssm_states, self.variant.fmt, self.variant.rounding,
                                          rbits=self.variant.rbits, rng=self.src)
            state.copy_(ssm_states.to(state.dtype))
            ssm_states = ssm_states.to(device=C.device, dtype=C.dtype)
            ssm_states_reshaped = ssm_states.view(batch_size * num_heads, head_dim, state_size)
            C_reshaped = C.view(batch_size * num_heads, state_size, 1)
            out = torch.bmm(ssm_states_reshaped, C_reshaped)
            out = out.view(batch_size, num_heads, head_dim)
        if D is not None:
            out = (out + hidden_states * D).to(out.dtype)
        if z is not None:
            out = out * F.silu(z)
        return out.to(hidden_states.dtype)

    def _exact(self, state, x, dt, dA, B, C):
        key = state.data_ptr()
        held = self._held.get(key)
        dec = self._dec.setdefault(key, DecayEncoder(self.variant.decay, self.dsrc))
        if held is not None and torch.equal(held[1], state):
            S = held[0]
        else:  # a state the hook did not write (prefill): enters the PIM rounded to nearest
            S = mx8.encode(state.float())
            dec.reset()
        inp = Inputs(d=dA[:, :, 0, :].float().contiguous(), k=B[:, :, 0, :].float().contiguous(),
                     v=(dt[..., 0] * x).float().contiguous(), q=C.float().contiguous())
        d, k, v, q = encode_inputs(inp, dec)
        res = spe.state_update(S, d, k, v, q, self.cfg, self.rng)
        new = mx8.decode(res.state)
        state.copy_(new.to(state.dtype))
        self._held[key] = (res.state, state.detach().clone())
        return res.y.to(torch.float32)


@contextlib.contextmanager
def quantized_mamba2(datapath: str = "exact", fmt: str = "mx8", rounding: str = "stochastic",
                     rbits: int = 8, *, renorm: str = "lod", decay: str = "nearest",
                     seed: int = 0, fused: bool = False):
    """Patch ``transformers``' Mamba-2 single-token step for the duration of the block::

        with quantized_mamba2("exact", rounding="stochastic") as step:
            model.generate(ids, max_new_tokens=32)
        print(step.calls)
    """
    from transformers.models.mamba2 import modeling_mamba2 as mod
    step = QuantizedStep(datapath, fmt, rounding, rbits, renorm=renorm, decay=decay, seed=seed,
                         fused=fused)
    orig = mod.mamba2_selective_state_update
    mod.mamba2_selective_state_update = step
    try:
        yield step
    finally:
        mod.mamba2_selective_state_update = orig


def tiny_mamba2(seed: int = 0, layers: int = 2):
    """A tiny randomly initialised ``Mamba2ForCausalLM`` (no download): hidden 64, 4 heads of
    head_dim 32, d_state 32 (a multiple of 32, as the SPE needs), vocabulary 128."""
    from transformers import Mamba2Config, Mamba2ForCausalLM
    torch.manual_seed(seed)
    cfg = Mamba2Config(vocab_size=128, hidden_size=64, state_size=32, num_heads=4, head_dim=32,
                       expand=2, n_groups=1, num_hidden_layers=layers, conv_kernel=4,
                       chunk_size=16, use_cache=True, tie_word_embeddings=True)
    return Mamba2ForCausalLM(cfg).eval()


@torch.no_grad()
def stepwise_nll(model, input_ids: torch.Tensor, prompt: int = 1) -> tuple[float, torch.Tensor]:
    """Mean negative log-likelihood of ``input_ids[:, prompt:]`` with the first ``prompt``
    tokens prefilled and every later token fed alone through the cached (recurrent) step.
    Returns ``(nll, logits)``; perplexity is ``exp(nll)``."""
    out = model(input_ids[:, :prompt], use_cache=True)
    cache = out.cache_params
    logits = [out.logits[:, -1]]
    for t in range(prompt, input_ids.shape[1] - 1):
        out = model(input_ids[:, t:t + 1], cache_params=cache, use_cache=True)
        cache = out.cache_params
        logits.append(out.logits[:, -1])
    lg = torch.stack(logits, dim=1).float()
    tgt = input_ids[:, prompt:]
    nll = F.cross_entropy(lg.reshape(-1, lg.shape[-1]), tgt.reshape(-1))
    return float(nll), lg


def perplexity(nll: float) -> float:
    return math.exp(nll)
