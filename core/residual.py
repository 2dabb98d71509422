"""The Feed-forward / residual-stream lesson's math, read from a `Trace` and the model's weights."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from core.glassbox import Trace, gelu


def residual_components(trace: Trace) -> list[tuple[str, torch.Tensor]]:
    """Everything added into the residual stream, in order: (name, [pos, d_model]). Their sum is
    the stream entering the final LayerNorm."""
    parts = [("embeddings", trace["embed.token"] + trace["embed.position"])]
    for layer in range(trace.n_layer):
        parts.append((f"attention {layer}", trace[f"blocks.{layer}.attn.out"]))
        parts.append((f"MLP {layer}", trace[f"blocks.{layer}.mlp.out"]))
    return parts


@torch.no_grad()
def direct_logit(vectors: torch.Tensor, trace: Trace, model, token_id: int, position: int = -1) -> torch.Tensor:
    """What `vectors` ([..., d_model], parts of the residual stream at `position`) add to the logit
    of `token_id`, directly: the final LayerNorm x ↦ γ ⊙ (x − mean(x)) / σ + β with σ held at the
    trace's real value for this position. Centring is linear, so parts that sum to the stream give
    contributions that sum to the logit, once β · unembedding is added. Returns [...]."""
    sigma = torch.sqrt(trace["ln_final.var"][position] + model.config.layer_norm_epsilon)  # []
    centred = vectors - vectors.mean(dim=-1, keepdim=True)  # [..., d_model]
    return (centred * model.transformer.ln_f.weight / sigma) @ model.lm_head.weight[token_id]  # [...]


@torch.no_grad()
def direct_logit_contributions(trace: Trace, model, token_id: int, position: int = -1) -> list[tuple[str, float]]:
    """Each component's direct contribution to the logit of `token_id` at `position`, plus the final
    LayerNorm's β term: they sum to the real logit (see `direct_logit`)."""
    out = [(name, float(direct_logit(component[position], trace, model, token_id, position)))
           for name, component in residual_components(trace)]
    out.append(("final LayerNorm bias β", float(model.transformer.ln_f.bias @ model.lm_head.weight[token_id])))
    return out


def residual_norms(trace: Trace, position: int = -1) -> list[tuple[str, float]]:
    """The length of the residual stream at `position` after the embeddings and each block."""
    norms = [("embeddings", float(trace["blocks.0.resid_pre"][position].norm()))]
    for layer in range(trace.n_layer):
        norms.append((f"after attention {layer}", float(trace[f"blocks.{layer}.resid_mid"][position].norm())))
        norms.append((f"after MLP {layer}", float(trace[f"blocks.{layer}.resid_post"][position].norm())))
    return norms


def most_active_neurons(trace: Trace, layer: int, count: int = 20) -> list[int]:
    """The neurons of a layer with the largest post-GELU activation anywhere in the prompt."""
    post = trace[f"blocks.{layer}.mlp.post"]  # [pos, d_mlp]
    return post.max(dim=0).values.topk(min(count, post.shape[1])).indices.tolist()


@torch.no_grad()
def neuron_output_effects(model, layer: int, neuron: int, count: int = 10) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """Which tokens a neuron's write direction promotes and suppresses: its row of the MLP's
    output matrix times the unembedding (ignoring the final LayerNorm's scaling)."""
    write = model.transformer.h[layer].mlp.c_proj.weight[neuron]  # [d_model] (Conv1D: [in=d_mlp, out])
    effect = model.lm_head.weight @ write  # [vocab]
    up, down = effect.topk(count), (-effect).topk(count)
    return (list(zip(up.indices.tolist(), up.values.tolist())),
            list(zip(down.indices.tolist(), (-down.values).tolist())))


@dataclass
class LayerNormStep:
    """One position through one LayerNorm, every number read from the trace."""
    before: torch.Tensor  # [d_model] the residual stream entering the LayerNorm
    mean: float
    var: float
    eps: float
    normalized: torch.Tensor  # [d_model] (x − mean) / √(var + eps): mean 0, variance ≈ 1
    gamma: torch.Tensor  # [d_model] learned scale
    beta: torch.Tensor  # [d_model] learned shift
    after: torch.Tensor  # [d_model] γ ⊙ normalized + β


def layer_norm_step(trace: Trace, model, layer: int, position: int, which: str = "ln2") -> LayerNormStep:
    """The LayerNorm in front of block `layer`'s MLP (`ln2`) or attention (`ln1`) at one position."""
    module = getattr(model.transformer.h[layer], "ln_2" if which == "ln2" else "ln_1")
    source = f"blocks.{layer}.resid_mid" if which == "ln2" else f"blocks.{layer}.resid_pre"
    name = f"blocks.{layer}.{which}"
    return LayerNormStep(before=trace[source][position], mean=float(trace[f"{name}.mean"][position]),
                         var=float(trace[f"{name}.var"][position]), eps=model.config.layer_norm_epsilon,
                         normalized=trace[f"{name}.normalized"][position], gamma=module.weight.detach(),
                         beta=module.bias.detach(), after=trace[f"{name}.out"][position])


def activation_curve(activation: str, low: float, high: float, points: int = 200) -> tuple[torch.Tensor, torch.Tensor]:
    """The MLP's activation function (GELU for GPT-2) drawn over [low, high], computed by the
    same function the glass-box forward uses."""
    x = torch.linspace(low, high, points)  # [points]
    return x, gelu(x, activation)  # [points], [points]


@torch.no_grad()
def neuron_logit_contributions(trace: Trace, model, layer: int, token_id: int, position: int = -1) -> torch.Tensor:
    """Each neuron of a layer's MLP: its direct contribution to the logit of `token_id` at
    `position` (activation × its write direction, through the final LayerNorm with σ held fixed,
    as in `direct_logit_contributions`). With the c_proj bias's share they sum to that MLP's bar."""
    write = model.transformer.h[layer].mlp.c_proj.weight  # [d_mlp, d_model] each neuron's write direction
    per_unit = direct_logit(write, trace, model, token_id, position)  # [d_mlp]
    return trace[f"blocks.{layer}.mlp.post"][position] * per_unit  # [d_mlp]


def neurons_pushing_token(trace: Trace, model, token_id: int, per_layer: int = 8) -> list[tuple[int, int]]:
    """(layer, neuron) pairs: in each layer, the neurons whose direct push on `token_id`'s logit
    at the last position is largest."""
    pairs = []
    for layer in range(trace.n_layer):
        contributions = neuron_logit_contributions(trace, model, layer, token_id)  # [d_mlp]
        pairs += [(layer, n) for n in contributions.topk(min(per_layer, contributions.numel())).indices.tolist()]
    return pairs
