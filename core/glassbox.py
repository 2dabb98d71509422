"""The glass-box forward pass of a GPT-2-architecture model, readable top to bottom.

The Hugging Face `GPT2LMHeadModel` is only the weight container. This file computes the
forward pass again, one step a line, and keeps every intermediate in a `Trace` under a
name that is its data path (`blocks.3.attn.pattern`), as TransformerLens does.

Shapes (one prompt, no batch dimension):
    pos     number of prompt tokens the model sees        (query and key positions alike)
    d_model width of the residual stream                  (config.n_embd)
    head    number of attention heads                     (config.n_head)
    d_head  width of one head                             (d_model // head)
    d_mlp   width of the MLP hidden layer                 (config.n_inner or 4 * d_model)
    vocab   vocabulary size

Nothing here mutates the model: interventions (ablate heads, ablate neurons, drop the
position embeddings) are arguments of `run_trace`, so one cached model can serve every
student at once.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

# Hugging Face's GPT-2 fills masked scores with the dtype's lowest value; -inf gives the
# same softmax and shows as an empty cell in a heatmap, which is what a masked score is.
MASKED_SCORE = float("-inf")


@dataclass(frozen=True)
class Interventions:
    """What to change in this forward call. The model itself is never edited.

    ablated_heads:   {(layer, head), ...}: that head's output is set to zero before c_proj.
    ablated_neurons: {(layer, neuron), ...}: that MLP neuron's activation is set to zero.
    use_positions:   False drops the position embeddings (the model sees a bag of tokens).
    """

    ablated_heads: frozenset[tuple[int, int]] = frozenset()
    ablated_neurons: frozenset[tuple[int, int]] = frozenset()
    use_positions: bool = True

    def is_none(self) -> bool:
        return not self.ablated_heads and not self.ablated_neurons and self.use_positions


NO_INTERVENTIONS = Interventions()


@dataclass
class Trace:
    """Every intermediate of one forward pass, by data path. All tensors are on the CPU.

    Names and shapes (L = layer index):
        embed.token            [pos, d_model]   rows of wte for the prompt's token ids
        embed.position         [pos, d_model]   rows of wpe for positions 0..pos-1 (zeros if dropped)
        blocks.L.resid_pre     [pos, d_model]   residual stream entering block L
        blocks.L.ln1.mean      [pos]            LayerNorm 1 statistics
        blocks.L.ln1.var       [pos]
        blocks.L.ln1.normalized[pos, d_model]   (x - mean) / sqrt(var + eps), before γ and β
        blocks.L.ln1.out       [pos, d_model]   after γ and β: the attention block's input
        blocks.L.attn.q/k/v    [head, pos, d_head]
        blocks.L.attn.scores   [head, query, key]  Q·Kᵀ, raw
        blocks.L.attn.scale    []               the divisor of the scores (√d_head)
        blocks.L.attn.scores_scaled  [head, query, key]  ÷ √d_head            (*)
        blocks.L.attn.scores_masked  [head, query, key]  future keys set to -inf (*)
        blocks.L.attn.pattern  [head, query, key]  softmax over keys; each row sums to 1
        blocks.L.attn.z        [head, pos, d_head] pattern · V, one output per head
        blocks.L.attn.out      [pos, d_model]   z of all heads concatenated · c_proj + bias
        blocks.L.resid_mid     [pos, d_model]   resid_pre + attn.out
        blocks.L.ln2.*                          as ln1, for the MLP
        blocks.L.mlp.pre       [pos, d_mlp]     c_fc output, before GELU
        blocks.L.mlp.post      [pos, d_mlp]     after GELU (ablated neurons are zero here)
        blocks.L.mlp.out       [pos, d_model]   c_proj of post
        blocks.L.resid_post    [pos, d_model]   resid_mid + mlp.out
        ln_final.*                              final LayerNorm, as ln1
        logits                 [pos, vocab]     ln_final.out · wteᵀ

    (*) computed when asked for, by the same operation as in the forward pass, from the
    stored scores: a trace is cached per prompt, and for GPT-2 small at 128 tokens each
    of these would add 9 MB to its 145. Each head's share of attn.out, [head, pos, d_model]
    (57 MB there), is not kept either: `head_outputs(model, trace, layer)` computes it.
    """

    token_ids: list[int]
    token_strings: list[str]
    n_layer: int
    n_head: int
    dropped_tokens: int = 0  # how many tokens at the start were cut to fit the context
    interventions: Interventions = NO_INTERVENTIONS
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)

    def __getitem__(self, name: str) -> torch.Tensor:
        if name in self.tensors:
            return self.tensors[name]
        block, _, step = name.rpartition(".attn.")
        if step == "scores_scaled":
            return self.tensors[f"{block}.attn.scores"] / self.tensors[f"{block}.attn.scale"]  # [head, query, key]
        if step == "scores_masked":
            return causal_mask(self[f"{block}.attn.scores_scaled"])  # [head, query, key]
        raise KeyError(name)

    @property
    def n_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def truncated(self) -> bool:
        return self.dropped_tokens > 0

    def next_token_probs(self) -> torch.Tensor:  # [vocab]
        return torch.softmax(self.tensors["logits"][-1], dim=-1)


def layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float,
               record: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    """LayerNorm over the last dimension, keeping its statistics under `name`."""
    mean = x.mean(dim=-1, keepdim=True)  # [pos, 1]
    var = x.var(dim=-1, keepdim=True, unbiased=False)  # [pos, 1]
    normalized = (x - mean) / torch.sqrt(var + eps)  # [pos, d_model]
    out = normalized * weight + bias  # [pos, d_model]
    record[f"{name}.mean"] = mean.squeeze(-1)  # [pos]
    record[f"{name}.var"] = var.squeeze(-1)  # [pos]
    record[f"{name}.normalized"] = normalized
    record[f"{name}.out"] = out
    return out


def causal_mask(scores: torch.Tensor) -> torch.Tensor:
    """Scores with every key after its query set to -inf: a token cannot look ahead."""
    n_query, n_key = scores.shape[-2:]
    future = torch.ones(n_query, n_key, dtype=torch.bool).triu(diagonal=1)  # [query, key]
    return scores.masked_fill(future, MASKED_SCORE)  # [head, query, key]


def concatenate_heads(z: torch.Tensor) -> torch.Tensor:
    """Every head's output side by side at each position: [head, pos, d_head] -> [pos, head * d_head]."""
    n_head, n_pos, d_head = z.shape
    return z.transpose(0, 1).reshape(n_pos, n_head * d_head)


def gelu(x: torch.Tensor, activation: str) -> torch.Tensor:
    """GPT-2's activation: 'gelu_new' is the tanh approximation, 'gelu' the exact one."""
    if activation in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast"):
        return F.gelu(x, approximate="tanh")
    if activation == "gelu":
        return F.gelu(x)
    if activation == "relu":
        return F.relu(x)
    raise ValueError(f"unsupported activation {activation!r}")


@torch.no_grad()
def run_trace(model, token_ids: list[int], token_strings: list[str] | None = None,
              interventions: Interventions = NO_INTERVENTIONS, max_tokens: int | None = None) -> Trace:
    """The forward pass of `model` (a GPT2LMHeadModel) on `token_ids`, every step recorded.

    Prompts longer than the context (or `max_tokens`) keep their last tokens; the trace's
    `dropped_tokens` says how many were cut.
    """
    config = model.config
    gpt = model.transformer
    n_head, d_model = config.n_head, config.n_embd
    d_head = d_model // n_head
    eps = config.layer_norm_epsilon
    limit = min(config.n_positions, max_tokens or config.n_positions)
    dropped = max(0, len(token_ids) - limit)
    token_ids = list(token_ids[dropped:])
    token_strings = list(token_strings[dropped:]) if token_strings is not None else [str(i) for i in token_ids]
    if not token_ids:
        raise ValueError("the prompt has no tokens")
    n_pos = len(token_ids)
    t: dict[str, torch.Tensor] = {}

    ids = torch.tensor(token_ids, dtype=torch.long)  # [pos]
    t["embed.token"] = gpt.wte.weight[ids]  # [pos, d_model]
    if interventions.use_positions:
        t["embed.position"] = gpt.wpe.weight[:n_pos].clone()  # [pos, d_model] (a copy: the trace never shares model memory)
    else:
        t["embed.position"] = torch.zeros(n_pos, d_model)  # [pos, d_model]
    resid = t["embed.token"] + t["embed.position"]  # [pos, d_model]

    for layer, block in enumerate(gpt.h):
        p = f"blocks.{layer}"
        t[f"{p}.resid_pre"] = resid  # [pos, d_model]

        # --- attention ---
        x = layer_norm(resid, block.ln_1.weight, block.ln_1.bias, eps, t, f"{p}.ln1")  # [pos, d_model]
        qkv = x @ block.attn.c_attn.weight + block.attn.c_attn.bias  # [pos, 3 * d_model] (Conv1D: [in, out])
        q, k, v = qkv.split(d_model, dim=-1)  # 3 × [pos, d_model]
        q = q.view(n_pos, n_head, d_head).transpose(0, 1)  # [head, pos, d_head]
        k = k.view(n_pos, n_head, d_head).transpose(0, 1)  # [head, pos, d_head]
        v = v.view(n_pos, n_head, d_head).transpose(0, 1)  # [head, pos, d_head]
        scores = q @ k.transpose(-1, -2)  # [head, query, key]
        scale = math.sqrt(d_head) if config.scale_attn_weights else 1.0
        if config.scale_attn_by_inverse_layer_idx:
            scale *= layer + 1
        scale = torch.tensor(scale)  # [] the divisor: √d_head (× layer+1 if so configured)
        scores_scaled = scores / scale  # [head, query, key]
        scores_masked = causal_mask(scores_scaled)  # [head, query, key]
        pattern = torch.softmax(scores_masked, dim=-1)  # [head, query, key]
        z = pattern @ v  # [head, pos, d_head]
        for ablated_layer, head in interventions.ablated_heads:
            if ablated_layer == layer:
                z[head] = 0.0
        attn_out = concatenate_heads(z) @ block.attn.c_proj.weight + block.attn.c_proj.bias  # [pos, d_model]
        resid = resid + attn_out  # [pos, d_model]
        t.update({f"{p}.attn.q": q, f"{p}.attn.k": k, f"{p}.attn.v": v, f"{p}.attn.scores": scores,
                  f"{p}.attn.scale": scale, f"{p}.attn.pattern": pattern, f"{p}.attn.z": z,
                  f"{p}.attn.out": attn_out, f"{p}.resid_mid": resid})

        # --- MLP ---
        x = layer_norm(resid, block.ln_2.weight, block.ln_2.bias, eps, t, f"{p}.ln2")  # [pos, d_model]
        pre = x @ block.mlp.c_fc.weight + block.mlp.c_fc.bias  # [pos, d_mlp]
        post = gelu(pre, config.activation_function)  # [pos, d_mlp]
        for ablated_layer, neuron in interventions.ablated_neurons:
            if ablated_layer == layer:
                post[:, neuron] = 0.0
        mlp_out = post @ block.mlp.c_proj.weight + block.mlp.c_proj.bias  # [pos, d_model]
        resid = resid + mlp_out  # [pos, d_model]
        t.update({f"{p}.mlp.pre": pre, f"{p}.mlp.post": post, f"{p}.mlp.out": mlp_out,
                  f"{p}.resid_post": resid})

    final = layer_norm(resid, gpt.ln_f.weight, gpt.ln_f.bias, eps, t, "ln_final")  # [pos, d_model]
    t["logits"] = final @ model.lm_head.weight.T  # [pos, vocab] (tied to wte in GPT-2)
    return Trace(token_ids=token_ids, token_strings=token_strings, n_layer=config.n_layer,
                 n_head=n_head, dropped_tokens=dropped, interventions=interventions, tensors=t)


def head_outputs(model, trace: Trace, layer: int) -> torch.Tensor:
    """Each head's share of `blocks.{layer}.attn.out`: its z through its own rows of c_proj
    (the bias belongs to no head). Summed over heads, plus the bias, it is attn.out.
    [head, pos, d_model]"""
    n_head = trace.n_head
    z = trace[f"blocks.{layer}.attn.z"]  # [head, pos, d_head]
    weight = model.transformer.h[layer].attn.c_proj.weight  # [d_model, d_model] (Conv1D: [in, out])
    w_out = weight.view(n_head, weight.shape[0] // n_head, weight.shape[1])  # [head, d_head, d_model]
    return z @ w_out  # [head, pos, d_model]
