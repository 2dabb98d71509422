"""The glass-box forward pass, readable top to bottom, for every family in `core.architectures`.

The Hugging Face model is only the weight container: `core.architectures.weights_of` reads it
into one canonical layout, and this file computes the forward pass again, one step a line,
keeping every intermediate in a `Trace` under a name that is its data path
(`blocks.3.attn.pattern`), as TransformerLens does. A block is an attention step and an MLP
step, as in nanoGPT's `Block.forward`; the family's switches say where the norms sit and
whether the two steps run one after the other or side by side.

Shapes (one prompt, no batch dimension):
    pos      number of prompt tokens the model sees  (query and key positions alike)
    d_model  width of the residual stream
    head     query heads per layer;  kv_head  key/value heads (fewer: grouped-query attention)
    d_head   width of one head
    d_mlp    width of the MLP hidden layer
    vocab    vocabulary size

Nothing here mutates the model: interventions (ablate heads, ablate neurons, drop the
positions) are arguments of `run_trace`, so one cached model can serve every student at once.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from core.architectures import Architecture, BlockWeights, ModelWeights, NormWeights, weights_of

# Hugging Face fills masked scores with the dtype's lowest value; -inf gives the same softmax
# and shows as an empty cell in a heatmap, which is what a masked score is.
MASKED_SCORE = float("-inf")

ACTIVATIONS = {
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),  # GPT-2's tanh approximation of GELU
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_fast": lambda x: F.gelu(x, approximate="tanh"),
    "gelu": F.gelu,  # the exact GELU, x · Φ(x)
    "relu": F.relu,
    "silu": F.silu,  # x · sigmoid(x): Llama's gate (SwiGLU)
    "swish": F.silu,
}


# what a lesson calls each of them: the tanh approximations are GELU too, swish is SiLU
ACTIVATION_NAMES = {"gelu_new": "GELU", "gelu_pytorch_tanh": "GELU", "gelu_fast": "GELU", "gelu": "GELU",
                    "relu": "ReLU", "silu": "SiLU", "swish": "SiLU"}


def activate(x: torch.Tensor, activation: str) -> torch.Tensor:
    return ACTIVATIONS[activation](x)


@dataclass(frozen=True)
class Interventions:
    """What to change in this forward call. The model itself is never edited.

    ablated_heads:   {(layer, head), ...}: that head's output z is set to zero before W_O.
    ablated_neurons: {(layer, neuron), ...}: that MLP neuron's activation (for a gated MLP the
                     gate × up product) is set to zero.
    use_positions:   False drops the positions: no position embedding is added and no rotary
                     turn is applied, so the model sees a bag of tokens.
    first_position:  the position the prompt's first token is given (0: the start of a context);
                     moving the whole prompt along shows what depends on place and what on distance.
    """

    ablated_heads: frozenset[tuple[int, int]] = frozenset()
    ablated_neurons: frozenset[tuple[int, int]] = frozenset()
    use_positions: bool = True
    first_position: int = 0

    def is_none(self) -> bool:
        return (not self.ablated_heads and not self.ablated_neurons and self.use_positions
                and self.first_position == 0)


NO_INTERVENTIONS = Interventions()

# trace[short, layer] -> trace[f"blocks.{layer}.{path}"]: TransformerLens' `cache["pattern", 0]`
SHORT_NAMES = {
    "resid_pre": "resid_pre", "resid_mid": "resid_mid", "resid_post": "resid_post",
    "q": "attn.q", "k": "attn.k", "v": "attn.v", "q_rot": "attn.q_rot", "k_rot": "attn.k_rot",
    "scores": "attn.scores", "scores_scaled": "attn.scores_scaled", "scores_masked": "attn.scores_masked",
    "attn_scale": "attn.scale", "pattern": "attn.pattern", "z": "attn.z",
    "attn_out": "attn.out", "mlp_pre": "mlp.pre", "mlp_pre_linear": "mlp.pre_linear", "mlp_post": "mlp.post",
    "mlp_out": "mlp.out", "ln1": "ln1.out", "ln2": "ln2.out", "ln1_scale": "ln1.scale", "ln2_scale": "ln2.scale",
}


@dataclass
class Trace:
    """Every intermediate of one forward pass, by data path. All tensors are on the CPU.

    Names and shapes (L = layer index). TransformerLens names the same quantities
    `blocks.L.attn.hook_pattern` etc.; here the `hook_` prefix is dropped.
        embed.token            [pos, d_model]   rows of W_E for the prompt's token ids
        embed.position         [pos, d_model]   rows of W_pos (learned positions only; zeros if dropped)
        blocks.L.resid_pre     [pos, d_model]   residual stream entering block L
        blocks.L.ln1.mean/var  [pos]            LayerNorm statistics (LayerNorm families only)
        blocks.L.ln1.scale     [pos]            the divisor: √(var + eps) for LayerNorm,
                                                √(mean(x²) + eps) for RMSNorm
        blocks.L.ln1.normalized[pos, d_model]   the input divided by scale (centred first for LayerNorm)
        blocks.L.ln1.out       [pos, d_model]   × γ (+ β): the attention step's input (pre-LN)
        blocks.L.attn.q        [head, pos, d_head]     x · W_Q + b_Q
        blocks.L.attn.k/v      [kv_head, pos, d_head]  (kv_head < head: each serves a group of query heads)
        blocks.L.attn.q_rot    [head, pos, d_head]     q turned by its position (rotary families)
        blocks.L.attn.k_rot    [kv_head, pos, d_head]  TransformerLens: hook_rot_q / hook_rot_k
        blocks.L.attn.scores   [head, query, key]  q·kᵀ (rotated where rotary), raw
        blocks.L.attn.scale    []               the divisor of the scores (√d_head; 1 for GPT-Neo)
        blocks.L.attn.scores_scaled  [head, query, key]  ÷ scale                           (*)
        blocks.L.attn.scores_masked  [head, query, key]  future keys (and keys outside a
                                                local window) set to -inf                  (*)
        blocks.L.attn.pattern  [head, query, key]  softmax over keys; each row sums to 1
        blocks.L.attn.z        [head, pos, d_head] pattern · V, one output per head
        blocks.L.attn.out      [pos, d_model]   z of all heads concatenated · W_O + b_O
        blocks.L.resid_mid     [pos, d_model]   after the attention step's addition (post-LN: and its
                                                norm); absent for parallel blocks, which have no middle
        blocks.L.ln2.*                          as ln1, for the MLP (absent where ln1 serves both, GPT-J)
        blocks.L.mlp.pre       [pos, d_mlp]     x · W_in + b_in before the activation;
                                                gated MLPs: x · W_gate + b_gate (TransformerLens' hook_pre)
        blocks.L.mlp.pre_linear[pos, d_mlp]     gated MLPs only: x · W_in + b_in, the "up" projection
        blocks.L.mlp.post      [pos, d_mlp]     act(pre), × pre_linear when gated (ablated neurons are zero)
        blocks.L.mlp.out       [pos, d_model]   post · W_out + b_out
        blocks.L.resid_post    [pos, d_model]   the stream leaving block L
        ln_final.*                              the final norm, as ln1 (absent for openai-gpt)
        logits                 [pos, vocab]     (ln_final.out or the last stream) · W_U + b_U

    (*) computed when asked for, by the same operation as in the forward pass, from the stored
    scores: a trace is cached per prompt, and for GPT-2 small at 128 tokens each of these would
    add 9 MB to its 145. Each head's share of attn.out, [head, pos, d_model] (57 MB there), is not
    kept either: `head_outputs(model, trace, layer)` computes it.

    `trace["pattern", 2]` is `trace["blocks.2.attn.pattern"]` (the short names are SHORT_NAMES).
    """

    token_ids: list[int]
    token_strings: list[str]
    arch: Architecture
    dropped_tokens: int = 0  # how many tokens at the start were cut to fit the context
    interventions: Interventions = NO_INTERVENTIONS
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)

    def __getitem__(self, name: str | tuple[str, int]) -> torch.Tensor:
        if isinstance(name, tuple):
            short, layer = name
            name = f"blocks.{layer}.{SHORT_NAMES[short]}"
        if name in self.tensors:
            return self.tensors[name]
        block, _, step = name.rpartition(".attn.")
        if step == "scores_scaled":
            return self.tensors[f"{block}.attn.scores"] / self.tensors[f"{block}.attn.scale"]  # [head, query, key]
        if step == "scores_masked":
            layer = int(block.rpartition(".")[2])
            return causal_mask(self[f"{block}.attn.scores_scaled"], self.arch.window[layer])  # [head, query, key]
        raise KeyError(name)

    def __contains__(self, name: str) -> bool:
        return name in self.tensors

    @property
    def n_layer(self) -> int:
        return self.arch.n_layer

    @property
    def n_head(self) -> int:
        return self.arch.n_head

    @property
    def n_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def truncated(self) -> bool:
        return self.dropped_tokens > 0

    @property
    def final_stream(self) -> str:
        """The name of what the unembedding reads: the final norm's output, or the last stream."""
        return "ln_final.out" if self.arch.final_norm else f"blocks.{self.n_layer - 1}.resid_post"

    def scored_qk(self, layer: int, head: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The query and key vectors whose dot products are this head's scores: rotated where the
        family is rotary, and the key/value head this query head shares. 2 × [pos, d_head]"""
        rotated = f"blocks.{layer}.attn.q_rot" in self.tensors
        q = self["q_rot" if rotated else "q", layer][head]  # [pos, d_head]
        k = self["k_rot" if rotated else "k", layer][self.arch.kv_head_of(head)]  # [pos, d_head]
        return q, k

    def next_token_probs(self) -> torch.Tensor:  # [vocab]
        return torch.softmax(self.tensors["logits"][-1], dim=-1)


# --- the steps ------------------------------------------------------------------------------------
def norm(x: torch.Tensor, weights: NormWeights, arch: Architecture, record: dict[str, torch.Tensor],
         name: str) -> torch.Tensor:
    """LayerNorm or RMSNorm over the last dimension, keeping its statistics under `name`."""
    if arch.norm == "layernorm":
        mean = x.mean(dim=-1, keepdim=True)  # [pos, 1]
        var = x.var(dim=-1, keepdim=True, unbiased=False)  # [pos, 1]
        scale = torch.sqrt(var + arch.eps)  # [pos, 1]
        normalized = (x - mean) / scale  # [pos, d_model]
        record[f"{name}.mean"] = mean.squeeze(-1)  # [pos]
        record[f"{name}.var"] = var.squeeze(-1)  # [pos]
    else:  # RMSNorm: no centring, no shift
        scale = torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True) + arch.eps)  # [pos, 1]
        normalized = x / scale  # [pos, d_model]
    out = normalized * weights.weight  # [pos, d_model]
    if weights.bias is not None:
        out = out + weights.bias  # [pos, d_model]
    record[f"{name}.scale"] = scale.squeeze(-1)  # [pos]
    record[f"{name}.normalized"] = normalized
    record[f"{name}.out"] = out
    return out


def causal_mask(scores: torch.Tensor, window: int | None = None) -> torch.Tensor:
    """Scores with every key after its query set to -inf (a token cannot look ahead), and with a
    local `window`, every key `window` or more positions back too."""
    n_query, n_key = scores.shape[-2:]
    query = torch.arange(n_query).unsqueeze(1)  # [query, 1]
    key = torch.arange(n_key).unsqueeze(0)  # [1, key]
    hidden = key > query  # [query, key]
    if window is not None:
        hidden = hidden | (query - key >= window)  # [query, key]
    return scores.masked_fill(hidden, MASKED_SCORE)  # [head, query, key]


def concatenate_heads(z: torch.Tensor) -> torch.Tensor:
    """Every head's output side by side at each position: [head, pos, d_head] -> [pos, head * d_head]."""
    n_head, n_pos, d_head = z.shape
    return z.transpose(0, 1).reshape(n_pos, n_head * d_head)


def rotary_angles(weights: ModelWeights, n_pos: int, first: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of the angle each rotary pair turns by at positions first..first+n_pos-1:
    2 × [pos, rotary_dim / 2]."""
    places = torch.arange(first, first + n_pos, dtype=torch.float32).unsqueeze(1)  # [pos, 1]
    angles = places * weights.rotary_inv_freq  # [pos, rotary_dim / 2]
    return angles.cos() * weights.rotary_scale, angles.sin() * weights.rotary_scale


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, arch: Architecture) -> torch.Tensor:
    """Rotary position embedding: each pair of dims (a, b) of the first rotary_dim dims turns by its
    position's angle, (a cos − b sin, b cos + a sin); the other dims pass unchanged.
    [heads, pos, d_head] -> [heads, pos, d_head]"""
    turned, passed = x[..., :arch.rotary_dim], x[..., arch.rotary_dim:]  # [heads, pos, rotary_dim], [..., rest]
    if arch.rotary_interleaved:  # GPT-J: pairs (0, 1), (2, 3), …
        first, second = turned[..., 0::2], turned[..., 1::2]  # 2 × [heads, pos, rotary_dim / 2]
    else:  # NeoX, Llama: pairs (i, i + rotary_dim / 2)
        first, second = turned.chunk(2, dim=-1)  # 2 × [heads, pos, rotary_dim / 2]
    new_first = first * cos - second * sin  # [heads, pos, rotary_dim / 2]
    new_second = second * cos + first * sin  # [heads, pos, rotary_dim / 2]
    if arch.rotary_interleaved:
        turned = torch.stack((new_first, new_second), dim=-1).flatten(-2)  # [heads, pos, rotary_dim]
    else:
        turned = torch.cat((new_first, new_second), dim=-1)  # [heads, pos, rotary_dim]
    return torch.cat((turned, passed), dim=-1)  # [heads, pos, d_head]


def share_kv_heads(x: torch.Tensor, arch: Architecture) -> torch.Tensor:
    """Each key/value head repeated for the query heads of its group: [kv_head, …] -> [head, …]."""
    return x if arch.group_size == 1 else x.repeat_interleave(arch.group_size, dim=0)


def attention_step(x: torch.Tensor, block: BlockWeights, layer: int, weights: ModelWeights, angles,
                   interventions: Interventions, t: dict[str, torch.Tensor], p: str) -> torch.Tensor:
    """One attention layer on its (normed) input x: [pos, d_model] -> [pos, d_model]."""
    arch = weights.arch
    q = torch.matmul(x, block.W_Q) + block.b_Q.unsqueeze(1)  # [head, pos, d_head]
    k = torch.matmul(x, block.W_K) + block.b_K.unsqueeze(1)  # [kv_head, pos, d_head]
    v = torch.matmul(x, block.W_V) + block.b_V.unsqueeze(1)  # [kv_head, pos, d_head]
    t.update({f"{p}.attn.q": q, f"{p}.attn.k": k, f"{p}.attn.v": v})
    if arch.rotary_dim and interventions.use_positions:
        q = t[f"{p}.attn.q_rot"] = rotate(q, *angles, arch)  # [head, pos, d_head]
        k = t[f"{p}.attn.k_rot"] = rotate(k, *angles, arch)  # [kv_head, pos, d_head]
    scores = q @ share_kv_heads(k, arch).transpose(-1, -2)  # [head, query, key]
    scale = torch.tensor(arch.attn_scale[layer])  # []
    pattern = torch.softmax(causal_mask(scores / scale, arch.window[layer]), dim=-1)  # [head, query, key]
    z = pattern @ share_kv_heads(v, arch)  # [head, pos, d_head]
    for ablated_layer, head in interventions.ablated_heads:
        if ablated_layer == layer:
            z[head] = 0.0
    attn_out = concatenate_heads(z) @ block.W_O.reshape(-1, arch.d_model) + block.b_O  # [pos, d_model]
    t.update({f"{p}.attn.scores": scores, f"{p}.attn.scale": scale, f"{p}.attn.pattern": pattern,
              f"{p}.attn.z": z, f"{p}.attn.out": attn_out})
    return attn_out


def mlp_step(x: torch.Tensor, block: BlockWeights, layer: int, arch: Architecture, interventions: Interventions,
             t: dict[str, torch.Tensor], p: str) -> torch.Tensor:
    """One MLP on its (normed) input x: [pos, d_model] -> [pos, d_model]."""
    if arch.gated:  # SwiGLU: act(x · W_gate) ⊙ (x · W_in)
        pre = x @ block.W_gate + block.b_gate  # [pos, d_mlp]
        pre_linear = t[f"{p}.mlp.pre_linear"] = x @ block.W_in + block.b_in  # [pos, d_mlp]
        post = activate(pre, arch.activation) * pre_linear  # [pos, d_mlp]
    else:
        pre = x @ block.W_in + block.b_in  # [pos, d_mlp]
        post = activate(pre, arch.activation)  # [pos, d_mlp]
    for ablated_layer, neuron in interventions.ablated_neurons:
        if ablated_layer == layer:
            post[:, neuron] = 0.0
    mlp_out = post @ block.W_out + block.b_out  # [pos, d_model]
    t.update({f"{p}.mlp.pre": pre, f"{p}.mlp.post": post, f"{p}.mlp.out": mlp_out})
    return mlp_out


def block_step(resid: torch.Tensor, block: BlockWeights, layer: int, weights: ModelWeights, angles,
               interventions: Interventions, t: dict[str, torch.Tensor]) -> torch.Tensor:
    """One transformer block: [pos, d_model] -> [pos, d_model]. Three arrangements:
    pre-LN (GPT-2, Neo, Llama):  x = x + attn(ln1(x));  x = x + mlp(ln2(x))
    post-LN (openai-gpt):        x = ln1(x + attn(x));  x = ln2(x + mlp(x))
    parallel (GPT-J, NeoX):      x = x + attn(ln1(x)) + mlp(ln2(x))   (GPT-J: ln2 is ln1)"""
    arch, p = weights.arch, f"blocks.{layer}"
    t[f"{p}.resid_pre"] = resid  # [pos, d_model]
    if arch.post_norm:
        attn_out = attention_step(resid, block, layer, weights, angles, interventions, t, p)  # [pos, d_model]
        resid = t[f"{p}.resid_mid"] = norm(resid + attn_out, block.ln1, arch, t, f"{p}.ln1")  # [pos, d_model]
        mlp_out = mlp_step(resid, block, layer, arch, interventions, t, p)  # [pos, d_model]
        resid = norm(resid + mlp_out, block.ln2, arch, t, f"{p}.ln2")  # [pos, d_model]
    elif arch.parallel:
        x_attn = norm(resid, block.ln1, arch, t, f"{p}.ln1")  # [pos, d_model]
        x_mlp = x_attn if arch.shared_norm else norm(resid, block.ln2, arch, t, f"{p}.ln2")  # [pos, d_model]
        attn_out = attention_step(x_attn, block, layer, weights, angles, interventions, t, p)  # [pos, d_model]
        mlp_out = mlp_step(x_mlp, block, layer, arch, interventions, t, p)  # [pos, d_model]
        resid = resid + attn_out + mlp_out  # [pos, d_model]
    else:
        x = norm(resid, block.ln1, arch, t, f"{p}.ln1")  # [pos, d_model]
        resid = t[f"{p}.resid_mid"] = resid + attention_step(x, block, layer, weights, angles, interventions, t, p)
        x = norm(resid, block.ln2, arch, t, f"{p}.ln2")  # [pos, d_model]
        resid = resid + mlp_step(x, block, layer, arch, interventions, t, p)  # [pos, d_model]
    t[f"{p}.resid_post"] = resid
    return resid


@torch.no_grad()
def run_trace(model, token_ids: list[int], token_strings: list[str] | None = None,
              interventions: Interventions = NO_INTERVENTIONS, max_tokens: int | None = None,
              through_block: int | None = None, resume_from: Trace | None = None) -> Trace:
    """The forward pass of `model` (any family `core.architectures` reads) on `token_ids`, every
    step recorded. Prompts longer than the context (or `max_tokens`) keep their last tokens; the
    trace's `dropped_tokens` says how many were cut. `through_block`: stop after that block, for an
    experiment that reads nothing later (the trace then holds no final norm and no logits).
    `resume_from`: the trace of the same tokens with no head or neuron ablated (the same positions):
    the blocks before the first one `interventions` ablate in compute exactly what they computed
    there, so their values are taken from it (the same tensors) and the pass starts at that block."""
    weights = weights_of(model)
    arch = weights.arch
    first = interventions.first_position
    limit = min(arch.n_ctx - first, max_tokens or arch.n_ctx)
    dropped = max(0, len(token_ids) - limit)
    token_ids = list(token_ids[dropped:])
    token_strings = list(token_strings[dropped:]) if token_strings is not None else [str(i) for i in token_ids]
    if not token_ids:
        raise ValueError("the prompt has no tokens")
    n_pos = len(token_ids)
    t: dict[str, torch.Tensor] = {}

    ids = torch.tensor(token_ids, dtype=torch.long)  # [pos]
    resid = t["embed.token"] = weights.W_E[ids]  # [pos, d_model]
    if arch.learned_positions:
        if interventions.use_positions:
            t["embed.position"] = weights.W_pos[first:first + n_pos].clone()  # [pos, d_model] (a copy: never model memory)
        else:
            t["embed.position"] = torch.zeros(n_pos, arch.d_model)  # [pos, d_model]
        resid = resid + t["embed.position"]  # [pos, d_model]
    angles = rotary_angles(weights, n_pos, first) if arch.rotary_dim else None  # 2 × [pos, rotary_dim / 2]
    start = 0 if resume_from is None else first_ablated_block(resume_from, token_ids, interventions)

    for layer, block in enumerate(weights.blocks):
        if layer < start:  # no ablation before `start`: the clean run's values, not computed again
            t.update({name: tensor for name, tensor in resume_from.tensors.items() if name.startswith(f"blocks.{layer}.")})
            resid = t[f"blocks.{layer}.resid_post"]  # [pos, d_model]
        else:
            resid = block_step(resid, block, layer, weights, angles, interventions, t)  # [pos, d_model]
        if layer == through_block:
            return Trace(token_ids=token_ids, token_strings=token_strings, arch=arch, dropped_tokens=dropped,
                         interventions=interventions, tensors=t)

    final = norm(resid, weights.ln_final, arch, t, "ln_final") if arch.final_norm else resid  # [pos, d_model]
    t["logits"] = final @ weights.W_U + weights.b_U  # [pos, vocab]
    return Trace(token_ids=token_ids, token_strings=token_strings, arch=arch, dropped_tokens=dropped,
                 interventions=interventions, tensors=t)


def first_ablated_block(clean: Trace, token_ids: list[int], interventions: Interventions) -> int:
    """The first block `interventions` ablate anything in (the number of blocks if none), for a run
    resumed from `clean`; a ValueError if `clean` is not the same run without ablations."""
    same_run = (clean.token_ids == token_ids and not clean.interventions.ablated_heads
                and not clean.interventions.ablated_neurons
                and clean.interventions.use_positions == interventions.use_positions
                and clean.interventions.first_position == interventions.first_position)
    if not same_run:
        raise ValueError("a run resumes only from the trace of the same tokens and positions with nothing ablated")
    return min((layer for layer, _ in interventions.ablated_heads | interventions.ablated_neurons), default=clean.n_layer)


def head_outputs(model, trace: Trace, layer: int) -> torch.Tensor:
    """Each head's share of `blocks.{layer}.attn.out`: its z through its own rows of W_O (the bias
    belongs to no head). Summed over heads, plus b_O, it is attn.out. [head, pos, d_model]"""
    w_out = weights_of(model).blocks[layer].W_O  # [head, d_head, d_model]
    return trace[f"blocks.{layer}.attn.z"] @ w_out  # [head, pos, d_model]

