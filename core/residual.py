"""The Feed-forward / residual-stream lesson's math, read from a `Trace` and the model's weights
(in the canonical layout of `core.architectures`, so it holds for every family)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from core.architectures import NormWeights, weights_of
from core.glassbox import Trace, activate


def _held_norm(vectors: torch.Tensor, weights: NormWeights, centre: bool, scale: torch.Tensor) -> torch.Tensor:
    """A norm with its divisor held at the trace's real value, which makes it linear (β left out):
    x ↦ γ ⊙ (x − mean(x)) / scale for LayerNorm, γ ⊙ x / scale for RMSNorm. [..., d_model]"""
    if centre:
        vectors = vectors - vectors.mean(dim=-1, keepdim=True)  # [..., d_model]
    return vectors * weights.weight / scale  # [..., d_model]


def norms_in_order(n_layer: int) -> list[tuple[int, str]]:
    return [(layer, which) for layer in range(n_layer) for which in ("ln1", "ln2")]


def carried(vectors: torch.Tensor, trace: Trace, model, first_norm: int, position: int | None = None) -> torch.Tensor:
    """Vectors written into a post-LN stream just before its norm number `first_norm` (counted
    over `norms_in_order`), carried through that norm and every later one, each with its divisor
    held at the trace's real value (β left out: it is a part of its own). In a pre-LN or parallel
    model the norms only read the stream, so nothing changes. `position`: the vectors' position
    (None: vectors are [pos, d_model], one row per position). [..., d_model]"""
    weights = weights_of(model)
    if not weights.arch.post_norm:
        return vectors
    centre = weights.arch.norm == "layernorm"
    for layer, which in norms_in_order(trace.n_layer)[first_norm:]:
        scale = trace[f"blocks.{layer}.{which}.scale"]  # [pos]
        scale = scale[position] if position is not None else scale.unsqueeze(-1)  # [] or [pos, 1]
        vectors = _held_norm(vectors, getattr(weights.blocks[layer], which), centre, scale)  # [..., d_model]
    return vectors


def residual_components(trace: Trace, model) -> list[tuple[str, torch.Tensor]]:
    """Everything added into the residual stream, in order: (name, [pos, d_model]). Their sum is
    what the unembedding reads before the final norm (the last block's resid_post).

    In a post-LN model (openai-gpt) each block's norms sit inside the stream. With each norm's
    divisor held at its real value a norm is linear, so every part is carried through the norms
    after it (`carried`) and each norm's β joins as a part of its own: the sum is still exact."""
    weights = weights_of(model)
    parts = [("embeddings", carried(trace["blocks.0.resid_pre"], trace, model, 0))]
    for layer in range(trace.n_layer):
        parts.append((f"attention {layer}", carried(trace["attn_out", layer], trace, model, 2 * layer)))
        if weights.arch.post_norm:
            parts.append((f"norm β {layer}.1", carried(weights.blocks[layer].ln1.bias.expand(trace.n_tokens, -1),
                                                       trace, model, 2 * layer + 1)))
        parts.append((f"MLP {layer}", carried(trace["mlp_out", layer], trace, model, 2 * layer + 1)))
        if weights.arch.post_norm:
            parts.append((f"norm β {layer}.2", carried(weights.blocks[layer].ln2.bias.expand(trace.n_tokens, -1),
                                                       trace, model, 2 * layer + 2)))
    return parts


@torch.no_grad()
def direct_logit(vectors: torch.Tensor, trace: Trace, model, token_id: int, position: int = -1) -> torch.Tensor:
    """What `vectors` ([..., d_model], parts of the residual stream at `position`) add to the logit
    of `token_id`, directly: through the final norm with its divisor held at the trace's real
    value for this position (LayerNorm also centres; centring is linear), then the unembedding.
    Parts that sum to the stream give contributions that sum to the logit, once the constant
    terms (`logit_constants`) are added. Returns [...]."""
    weights = weights_of(model)
    unembed = weights.W_U[:, token_id]  # [d_model]
    if not weights.arch.final_norm:
        return vectors @ unembed  # [...]
    scale = trace["ln_final.scale"][position]  # []
    return _held_norm(vectors, weights.ln_final, weights.arch.norm == "layernorm", scale) @ unembed  # [...]


def logit_constants(model, token_id: int) -> list[tuple[str, float]]:
    """The parts of a logit that no prompt changes: the final norm's β and the unembedding's bias
    (each only where the family has it)."""
    weights = weights_of(model)
    out = []
    if weights.arch.final_norm and weights.ln_final.bias is not None:
        out.append(("final norm β", float(weights.ln_final.bias @ weights.W_U[:, token_id])))
    if bool(weights.b_U.any()):
        out.append(("unembedding bias", float(weights.b_U[token_id])))
    return out


@torch.no_grad()
def direct_logit_contributions(trace: Trace, model, token_id: int, position: int = -1) -> list[tuple[str, float]]:
    """Each component's direct contribution to the logit of `token_id` at `position`, plus the
    constant terms: they sum to the real logit (see `direct_logit`)."""
    out = [(name, float(direct_logit(component[position], trace, model, token_id, position)))
           for name, component in residual_components(trace, model)]
    return out + logit_constants(model, token_id)


def residual_norms(trace: Trace, position: int = -1) -> list[tuple[str, float]]:
    """The length of the residual stream at `position` after the embeddings and each addition
    (a parallel block adds attention and MLP at once, so it has one point, not two)."""
    norms = [("embeddings", float(trace["blocks.0.resid_pre"][position].norm()))]
    for layer in range(trace.n_layer):
        if f"blocks.{layer}.resid_mid" in trace:
            norms.append((f"after attention {layer}", float(trace["resid_mid", layer][position].norm())))
            norms.append((f"after MLP {layer}", float(trace["resid_post", layer][position].norm())))
        else:
            norms.append((f"after block {layer}", float(trace["resid_post", layer][position].norm())))
    return norms


def most_active_neurons(trace: Trace, layer: int, count: int = 20) -> list[int]:
    """The neurons of a layer with the largest activation (after the activation function; the
    gate × up product in a gated MLP) anywhere in the prompt."""
    post = trace["mlp_post", layer]  # [pos, d_mlp]
    return post.max(dim=0).values.topk(min(count, post.shape[1])).indices.tolist()


@torch.no_grad()
def neuron_output_effects(model, layer: int, neuron: int, count: int = 10) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """Which tokens a neuron's write direction promotes and suppresses: its row of W_out through
    the final norm's linear part (centring and γ, the same maths as the waterfall) and the
    unembedding. The norm's divisor depends on the prompt and is left out: it scales every token's
    value by the same positive factor, so the lists do not depend on it."""
    weights = weights_of(model)
    write = weights.blocks[layer].W_out[neuron]  # [d_model]
    if weights.arch.final_norm:
        write = _held_norm(write, weights.ln_final, weights.arch.norm == "layernorm", torch.tensor(1.0))  # [d_model]
    effect = write @ weights.W_U  # [vocab]
    up, down = effect.topk(count), (-effect).topk(count)
    return (list(zip(up.indices.tolist(), up.values.tolist())),
            list(zip(down.indices.tolist(), (-down.values).tolist())))


@dataclass
class NormStep:
    """One position through one norm, every number read from the trace."""
    kind: str  # "layernorm" or "rmsnorm"
    before: torch.Tensor  # [d_model] the vector entering the norm
    mean: float | None  # LayerNorm only: it subtracts the mean first
    var: float | None  # LayerNorm: the variance; (RMSNorm divides by the root of the mean square instead)
    scale: float  # the divisor: √(var + eps), or √(mean(x²) + eps)
    eps: float
    normalized: torch.Tensor  # [d_model] before ÷ scale (centred first for LayerNorm)
    gamma: torch.Tensor  # [d_model] learned scale
    beta: torch.Tensor | None  # [d_model] learned shift (LayerNorm only)
    after: torch.Tensor  # [d_model] γ ⊙ normalized (+ β)


def norm_input_name(trace: Trace, layer: int, which: str) -> str:
    """What a block's norm reads: ln1 the block's input; ln2 the stream after attention (pre-LN),
    the block's input too (parallel blocks)."""
    arch = trace.arch
    if which == "ln1" or arch.parallel:
        return f"blocks.{layer}.resid_pre"
    return f"blocks.{layer}.resid_mid"


def norm_step(trace: Trace, model, layer: int, position: int, which: str = "ln2") -> NormStep:
    """The norm in front of block `layer`'s MLP (`ln2`) or attention (`ln1`) at one position, for a
    pre-LN or parallel model (GPT-J's one norm is `ln1`)."""
    weights = weights_of(model)
    arch = weights.arch
    if which == "ln2" and weights.blocks[layer].ln2 is None:
        which = "ln1"
    norm_weights = getattr(weights.blocks[layer], which)
    name = f"blocks.{layer}.{which}"
    is_layer_norm = arch.norm == "layernorm"
    return NormStep(kind=arch.norm, before=trace[norm_input_name(trace, layer, which)][position],
                    mean=float(trace[f"{name}.mean"][position]) if is_layer_norm else None,
                    var=float(trace[f"{name}.var"][position]) if is_layer_norm else None,
                    scale=float(trace[f"{name}.scale"][position]), eps=arch.eps,
                    normalized=trace[f"{name}.normalized"][position], gamma=norm_weights.weight,
                    beta=norm_weights.bias, after=trace[f"{name}.out"][position])


def rms_norm_of(vector: torch.Tensor, eps: float) -> tuple[float, torch.Tensor]:
    """RMSNorm's divisor and result on a vector, before γ: (√(mean(x²) + eps), x ÷ it). [d_model]"""
    scale = torch.sqrt(vector.pow(2).mean() + eps)  # []
    return float(scale), vector / scale  # [d_model]


def layer_norm_of(vector: torch.Tensor, eps: float) -> tuple[float, torch.Tensor]:
    """LayerNorm's divisor and result on a vector, before γ and β: (√(var + eps), (x − mean) ÷ it)."""
    centred = vector - vector.mean()  # [d_model]
    scale = torch.sqrt(centred.pow(2).mean() + eps)  # []
    return float(scale), centred / scale  # [d_model]


def activation_curve(activation: str, low: float, high: float, points: int = 200) -> tuple[torch.Tensor, torch.Tensor]:
    """The MLP's activation function (GELU for GPT-2, SiLU for Llama's gate) drawn over
    [low, high], computed by the same function the glass-box forward uses."""
    x = torch.linspace(low, high, points)  # [points]
    return x, activate(x, activation)  # [points], [points]


def activation_of(values: torch.Tensor, activation: str) -> torch.Tensor:
    """The activation function alone on real pre-activations (for a gated MLP the gate's, before
    the up factor), by the forward's own function."""
    return activate(values, activation)


def gate_parts(trace: Trace, layer: int, neuron: int, activation: str) -> dict[str, list[float]]:
    """A gated (SwiGLU) neuron at every position of the prompt: its gate before and after the
    activation, its up value, and their product, which is what the neuron writes with."""
    gate = trace["mlp_pre", layer][:, neuron]  # [pos]
    up = trace["mlp_pre_linear", layer][:, neuron]  # [pos]
    return {"gate (x·W_gate)": gate.tolist(), "act(gate)": activate(gate, activation).tolist(),
            "up (x·W_in)": up.tolist(), "act(gate) × up": trace["mlp_post", layer][:, neuron].tolist()}


@torch.no_grad()
def neuron_logit_contributions(trace: Trace, model, layer: int, token_id: int, position: int = -1) -> torch.Tensor:
    """Each neuron of a layer's MLP: its direct contribution to the logit of `token_id` at
    `position` (activation × its write direction, through the final norm with its divisor held
    fixed, as in `direct_logit_contributions`). With b_out's share they sum to that MLP's bar
    (in a pre-LN or parallel model; post-LN norms come between)."""
    write = weights_of(model).blocks[layer].W_out  # [d_mlp, d_model] each neuron's write direction
    per_unit = direct_logit(write, trace, model, token_id, position)  # [d_mlp]
    return trace["mlp_post", layer][position] * per_unit  # [d_mlp]


def neurons_pushing_token(trace: Trace, model, token_id: int, per_layer: int = 8) -> list[tuple[int, int]]:
    """(layer, neuron) pairs: in each layer, the neurons whose direct push on `token_id`'s logit
    at the last position is largest."""
    pairs = []
    for layer in range(trace.n_layer):
        contributions = neuron_logit_contributions(trace, model, layer, token_id)  # [d_mlp]
        pairs += [(layer, n) for n in contributions.topk(min(per_layer, contributions.numel())).indices.tolist()]
    return pairs
