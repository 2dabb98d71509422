"""Every supported model family read into one canonical layout, so one glass-box forward serves all.

A Hugging Face model is only the weight container. Each family has a small converter that
reads its weights into `ModelWeights` (the layout TransformerLens uses: per-head projection
matrices, the norms, W_in / W_gate / W_out, W_U) plus an `Architecture`: the few switches in
which the families differ. The converted tensors are views of the model's own parameters
(nothing is copied where a view will do, and nothing is ever written).

Shapes (no batch dimension):
    d_model  width of the residual stream        head     query heads per layer
    d_head   width of one head                   kv_head  key/value heads (< head: grouped-query)
    d_mlp    width of the MLP hidden layer       vocab    vocabulary size
    n_ctx    longest context the model was built for

Families (transformers class → converter):
    gpt2        GPT2LMHeadModel       pre-LN, learned positions, GELU MLP
    openai-gpt  OpenAIGPTLMHeadModel  post-LN ("Add & Norm") and no final LayerNorm
    gpt_neo     GPTNeoForCausalLM     layers alternate global and local attention; scores not scaled
    gptj        GPTJForCausalLM       rotary on the first rotary_dim dims (interleaved pairs);
                                      attention and MLP in parallel from one LayerNorm
    gpt_neox    GPTNeoXForCausalLM    rotary on a share of each head (halves); parallel residual
    llama, qwen2, mistral             RMSNorm, rotary on all dims (halves), SwiGLU MLP,
                                      grouped-query attention; Qwen2's q/k/v biases; sliding windows
"""
from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, replace

import torch

from core.families import FAMILIES, supported_families_sentence


@dataclass(frozen=True)
class Architecture:
    """The switches in which the families differ. Everything else is the same forward."""

    family: str  # a key of FAMILIES
    n_layer: int
    d_model: int
    n_head: int
    n_kv_head: int  # n_head: every head has its own keys and values; fewer: grouped-query attention
    d_head: int
    d_mlp: int
    vocab: int
    n_ctx: int  # the longest context the model takes
    norm: str  # "layernorm" (x − mean, ÷ σ, × γ, + β) or "rmsnorm" (÷ root-mean-square, × γ)
    eps: float
    post_norm: bool  # True: the norm comes after each addition ("Add & Norm", openai-gpt)
    parallel: bool  # attention and MLP both read the block's input stream and both add to it
    shared_norm: bool  # parallel with one norm for both halves (GPT-J); False: ln1 and ln2 (NeoX)
    final_norm: bool  # a norm before the unembedding
    learned_positions: bool  # a position embedding added to the token embedding
    rotary_dim: int  # dims of each head that rotary position embedding turns (0: none)
    rotary_interleaved: bool  # rotary pairs (0,1), (2,3)… (GPT-J); False: (i, i + rotary_dim/2) (NeoX, Llama)
    activation: str  # a key of core.glassbox.ACTIVATIONS
    gated: bool  # the MLP is act(x·W_gate) ⊙ (x·W_in) (SwiGLU for silu)
    attn_scale: tuple[float, ...]  # per layer: the scores are divided by this (√d_head, or 1 for GPT-Neo)
    window: tuple[int | None, ...]  # per layer: a key is seen only if query − key < window (None: all)

    @property
    def group_size(self) -> int:
        """Query heads that share one key/value head."""
        return self.n_head // self.n_kv_head

    def kv_head_of(self, head: int) -> int:
        return head // self.group_size


@dataclass(frozen=True)
class NormWeights:
    weight: torch.Tensor  # [d_model] γ
    bias: torch.Tensor | None  # [d_model] β (None for RMSNorm, which has no shift)


@dataclass(frozen=True)
class BlockWeights:
    ln1: NormWeights  # before attention (pre-LN), or after its addition (post-LN)
    ln2: NormWeights | None  # before the MLP (None: GPT-J's parallel block shares ln1)
    W_Q: torch.Tensor  # [head, d_model, d_head]
    W_K: torch.Tensor  # [kv_head, d_model, d_head]
    W_V: torch.Tensor  # [kv_head, d_model, d_head]
    W_O: torch.Tensor  # [head, d_head, d_model]
    b_Q: torch.Tensor  # [head, d_head]      (zeros where the family has no bias)
    b_K: torch.Tensor  # [kv_head, d_head]
    b_V: torch.Tensor  # [kv_head, d_head]
    b_O: torch.Tensor  # [d_model]
    W_in: torch.Tensor  # [d_model, d_mlp]  the MLP's input projection (the "up" projection when gated)
    b_in: torch.Tensor  # [d_mlp]
    W_gate: torch.Tensor | None  # [d_model, d_mlp]  gated MLPs only
    b_gate: torch.Tensor | None  # [d_mlp]
    W_out: torch.Tensor  # [d_mlp, d_model]  row n: what neuron n writes into the stream
    b_out: torch.Tensor  # [d_model]


@dataclass(frozen=True)
class ModelWeights:
    arch: Architecture
    W_E: torch.Tensor  # [vocab, d_model] token embedding
    W_pos: torch.Tensor | None  # [n_ctx, d_model] learned position embedding (None: rotary)
    blocks: tuple[BlockWeights, ...]
    ln_final: NormWeights | None
    W_U: torch.Tensor  # [d_model, vocab] unembedding
    b_U: torch.Tensor  # [vocab] (zeros but for GPT-J)
    rotary_inv_freq: torch.Tensor | None  # [rotary_dim / 2] angle per position of each rotary pair
    rotary_scale: float  # cos and sin are multiplied by this (1 but for scaled rotary variants)
    tied: bool  # W_U is W_E transposed (the same parameter)
    parameter_storages: frozenset[int] = frozenset()  # where the model's parameters live: a tensor here
    #                                                   is a parameter (or a view of one) if its storage is in it


# --- small helpers shared by the converters ------------------------------------------------------
def _zeros(*shape: int) -> torch.Tensor:
    return torch.zeros(*shape)


def _norm(module) -> NormWeights:
    bias = getattr(module, "bias", None)  # LayerNorm has β; RMSNorm has none
    return NormWeights(module.weight.detach(), bias.detach() if bias is not None else None)


def _heads_in(weight: torch.Tensor, n_heads: int) -> torch.Tensor:
    """A [d_model, n_heads * d_head] input projection as [n_heads, d_model, d_head] (a view)."""
    d_model = weight.shape[0]
    return weight.view(d_model, n_heads, -1).permute(1, 0, 2)  # [n_heads, d_model, d_head]


def _heads_out(weight: torch.Tensor, n_heads: int) -> torch.Tensor:
    """A [n_heads * d_head, d_model] output projection as [n_heads, d_head, d_model] (a view)."""
    return weight.view(n_heads, -1, weight.shape[-1])  # [n_heads, d_head, d_model]


def _linear(module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """nn.Linear stores [out, in]; the layout here multiplies on the right: [in, out]."""
    bias = module.bias.detach() if module.bias is not None else None
    return module.weight.detach().T, bias


def _bias_or_zeros(bias: torch.Tensor | None, *shape: int) -> torch.Tensor:
    return bias.view(*shape) if bias is not None else _zeros(*shape)


def _activation(name: str) -> str:
    from core.glassbox import ACTIVATIONS

    if name not in ACTIVATIONS:
        raise UnsupportedModel(f"its activation function {name!r} is not one the glass box computes")
    return name


class UnsupportedModel(Exception):
    """The model's family or one of its settings is not one the glass box reads."""


def _tied(model) -> bool:
    return model.get_output_embeddings().weight is model.get_input_embeddings().weight


# --- the converters, one per family --------------------------------------------------------------
def _conv1d_block(block, n_head: int, d_model: int, ln1, ln2, mlp) -> BlockWeights:
    """GPT-2 and openai-gpt: Conv1D weights are already [in, out]; c_attn holds Q, K, V side by side."""
    qkv_weight = block.attn.c_attn.weight.detach()  # [d_model, 3 * d_model]
    qkv_bias = block.attn.c_attn.bias.detach()  # [3 * d_model]
    w_q, w_k, w_v = qkv_weight.split(d_model, dim=1)  # 3 × [d_model, d_model]
    b_q, b_k, b_v = qkv_bias.split(d_model)  # 3 × [d_model]
    return BlockWeights(
        ln1=_norm(ln1), ln2=_norm(ln2),
        W_Q=_heads_in(w_q, n_head), W_K=_heads_in(w_k, n_head), W_V=_heads_in(w_v, n_head),
        W_O=_heads_out(block.attn.c_proj.weight.detach(), n_head),
        b_Q=b_q.view(n_head, -1), b_K=b_k.view(n_head, -1), b_V=b_v.view(n_head, -1),
        b_O=block.attn.c_proj.bias.detach(),
        W_in=mlp.c_fc.weight.detach(), b_in=mlp.c_fc.bias.detach(), W_gate=None, b_gate=None,
        W_out=mlp.c_proj.weight.detach(), b_out=mlp.c_proj.bias.detach())


def _separate_qkv_block(attn, n_head: int, n_kv_head: int, ln1, ln2, w_in, w_gate, w_out) -> BlockWeights:
    """Families with separate nn.Linear q, k, v and output projections (GPT-Neo, GPT-J, Llama…).
    `w_in`, `w_gate`, `w_out` are the MLP's nn.Linear modules (`w_gate` None when not gated)."""
    d_model = attn.q_proj.weight.shape[1]
    w_q, b_q = _linear(attn.q_proj)  # [d_model, head * d_head]
    w_k, b_k = _linear(attn.k_proj)  # [d_model, kv_head * d_head]
    w_v, b_v = _linear(attn.v_proj)
    out = attn.out_proj if hasattr(attn, "out_proj") else attn.o_proj
    w_o, b_o = _linear(out)  # [head * d_head, d_model]
    d_head = w_q.shape[1] // n_head
    up, b_up = _linear(w_in)  # [d_model, d_mlp]
    gate, b_gate = _linear(w_gate) if w_gate is not None else (None, None)
    down, b_down = _linear(w_out)  # [d_mlp, d_model]
    d_mlp = up.shape[1]
    return BlockWeights(
        ln1=_norm(ln1), ln2=_norm(ln2) if ln2 is not None else None,
        W_Q=_heads_in(w_q, n_head), W_K=_heads_in(w_k, n_kv_head), W_V=_heads_in(w_v, n_kv_head),
        W_O=_heads_out(w_o, n_head),
        b_Q=_bias_or_zeros(b_q, n_head, d_head), b_K=_bias_or_zeros(b_k, n_kv_head, d_head),
        b_V=_bias_or_zeros(b_v, n_kv_head, d_head), b_O=_bias_or_zeros(b_o, d_model),
        W_in=up, b_in=_bias_or_zeros(b_up, d_mlp),
        W_gate=gate, b_gate=None if gate is None else _bias_or_zeros(b_gate, d_mlp),
        W_out=down, b_out=_bias_or_zeros(b_down, d_model))


def _unembedding(model) -> tuple[torch.Tensor, torch.Tensor]:
    head = model.get_output_embeddings()
    vocab = head.weight.shape[0]
    bias = head.bias.detach() if getattr(head, "bias", None) is not None else _zeros(vocab)
    return head.weight.detach().T, bias  # [d_model, vocab], [vocab]


def convert_gpt2(model) -> ModelWeights:
    c, gpt = model.config, model.transformer
    d_head = c.n_embd // c.n_head
    scale = [(d_head ** 0.5 if c.scale_attn_weights else 1.0) * ((layer + 1) if c.scale_attn_by_inverse_layer_idx else 1)
             for layer in range(c.n_layer)]
    arch = Architecture(
        family="gpt2", n_layer=c.n_layer, d_model=c.n_embd, n_head=c.n_head, n_kv_head=c.n_head, d_head=d_head,
        d_mlp=c.n_inner or 4 * c.n_embd, vocab=c.vocab_size, n_ctx=c.n_positions, norm="layernorm",
        eps=c.layer_norm_epsilon, post_norm=False, parallel=False, shared_norm=False, final_norm=True,
        learned_positions=True, rotary_dim=0, rotary_interleaved=False, activation=_activation(c.activation_function),
        gated=False, attn_scale=tuple(scale), window=(None,) * c.n_layer)
    blocks = tuple(_conv1d_block(b, c.n_head, c.n_embd, b.ln_1, b.ln_2, b.mlp) for b in gpt.h)
    w_u, b_u = _unembedding(model)
    return ModelWeights(arch, gpt.wte.weight.detach(), gpt.wpe.weight.detach(), blocks, _norm(gpt.ln_f),
                        w_u, b_u, None, 1.0, _tied(model))


def convert_openai_gpt(model) -> ModelWeights:
    c, gpt = model.config, model.transformer
    d_head = c.n_embd // c.n_head
    arch = Architecture(
        family="openai-gpt", n_layer=c.n_layer, d_model=c.n_embd, n_head=c.n_head, n_kv_head=c.n_head, d_head=d_head,
        d_mlp=4 * c.n_embd, vocab=c.vocab_size, n_ctx=c.n_positions, norm="layernorm", eps=c.layer_norm_epsilon,
        post_norm=True, parallel=False, shared_norm=False, final_norm=False, learned_positions=True, rotary_dim=0,
        rotary_interleaved=False, activation=_activation({"gelu": "gelu_new"}.get(c.afn, c.afn)), gated=False,
        attn_scale=(d_head ** 0.5,) * c.n_layer, window=(None,) * c.n_layer)
    blocks = tuple(_conv1d_block(b, c.n_head, c.n_embd, b.ln_1, b.ln_2, b.mlp) for b in gpt.h)
    w_u, b_u = _unembedding(model)
    return ModelWeights(arch, gpt.tokens_embed.weight.detach(), gpt.positions_embed.weight.detach(), blocks, None,
                        w_u, b_u, None, 1.0, _tied(model))


def convert_gpt_neo(model) -> ModelWeights:
    c, gpt = model.config, model.transformer
    d_head = c.hidden_size // c.num_heads
    windows = tuple(c.window_size if kind == "local" else None for kind in c.attention_layers)
    arch = Architecture(
        family="gpt_neo", n_layer=c.num_layers, d_model=c.hidden_size, n_head=c.num_heads, n_kv_head=c.num_heads,
        d_head=d_head, d_mlp=c.intermediate_size or 4 * c.hidden_size, vocab=c.vocab_size,
        n_ctx=c.max_position_embeddings, norm="layernorm", eps=c.layer_norm_epsilon, post_norm=False, parallel=False,
        shared_norm=False, final_norm=True, learned_positions=True, rotary_dim=0, rotary_interleaved=False,
        activation=_activation(c.activation_function), gated=False,
        attn_scale=(1.0,) * c.num_layers,  # GPT-Neo does not divide its scores by √d_head
        window=windows)
    blocks = tuple(_separate_qkv_block(b.attn.attention, c.num_heads, c.num_heads, b.ln_1, b.ln_2,
                                       b.mlp.c_fc, None, b.mlp.c_proj) for b in gpt.h)
    w_u, b_u = _unembedding(model)
    return ModelWeights(arch, gpt.wte.weight.detach(), gpt.wpe.weight.detach(), blocks, _norm(gpt.ln_f),
                        w_u, b_u, None, 1.0, _tied(model))


def rotary_frequencies(rotary_dim: int, base: float = 10000.0) -> torch.Tensor:
    """The original RoPE angles: pair i turns by position × base^(−2i / rotary_dim). [rotary_dim / 2]"""
    return 1.0 / (base ** (torch.arange(0, rotary_dim, 2, dtype=torch.int64).float() / rotary_dim))


def convert_gptj(model) -> ModelWeights:
    c, gpt = model.config, model.transformer
    d_head = c.n_embd // c.n_head
    rotary_dim = c.rotary_dim or d_head
    arch = Architecture(
        family="gptj", n_layer=c.n_layer, d_model=c.n_embd, n_head=c.n_head, n_kv_head=c.n_head, d_head=d_head,
        d_mlp=c.n_inner or 4 * c.n_embd, vocab=c.vocab_size, n_ctx=c.n_positions, norm="layernorm",
        eps=c.layer_norm_epsilon, post_norm=False, parallel=True, shared_norm=True, final_norm=True,
        learned_positions=False, rotary_dim=rotary_dim, rotary_interleaved=True,
        activation=_activation(c.activation_function), gated=False, attn_scale=(d_head ** 0.5,) * c.n_layer,
        window=(None,) * c.n_layer)
    blocks = tuple(_separate_qkv_block(b.attn, c.n_head, c.n_head, b.ln_1, None, b.mlp.fc_in, None, b.mlp.fc_out)
                   for b in gpt.h)
    w_u, b_u = _unembedding(model)
    return ModelWeights(arch, gpt.wte.weight.detach(), None, blocks, _norm(gpt.ln_f), w_u, b_u,
                        rotary_frequencies(rotary_dim), 1.0, _tied(model))


def _rotary_module(model):
    rotary = getattr(model.base_model, "rotary_emb", None)
    if rotary is None:
        raise UnsupportedModel("it has no rotary embedding module")
    return rotary.inv_freq.detach().float(), float(getattr(rotary, "attention_scaling", 1.0))


def convert_gpt_neox(model) -> ModelWeights:
    c, neox = model.config, model.gpt_neox
    n_head, d_model = c.num_attention_heads, c.hidden_size
    d_head = d_model // n_head
    inv_freq, rotary_scale = _rotary_module(model)
    arch = Architecture(
        family="gpt_neox", n_layer=c.num_hidden_layers, d_model=d_model, n_head=n_head, n_kv_head=n_head,
        d_head=d_head, d_mlp=c.intermediate_size, vocab=c.vocab_size, n_ctx=c.max_position_embeddings,
        norm="layernorm", eps=c.layer_norm_eps, post_norm=False, parallel=c.use_parallel_residual, shared_norm=False,
        final_norm=True, learned_positions=False, rotary_dim=2 * inv_freq.numel(), rotary_interleaved=False,
        activation=_activation(c.hidden_act), gated=False, attn_scale=(d_head ** 0.5,) * c.num_hidden_layers,
        window=(None,) * c.num_hidden_layers)
    blocks = []
    for layer in neox.layers:
        attn = layer.attention
        # query_key_value's rows are grouped by head: [head, (q, k, v), d_head]
        qkv = attn.query_key_value.weight.detach().view(n_head, 3, d_head, d_model)  # [head, 3, d_head, d_model]
        qkv_bias = (attn.query_key_value.bias.detach().view(n_head, 3, d_head) if attn.query_key_value.bias is not None
                    else _zeros(n_head, 3, d_head))  # [head, 3, d_head]
        w_o, b_o = _linear(attn.dense)  # [d_model, d_model]
        w_in, b_in = _linear(layer.mlp.dense_h_to_4h)
        w_out, b_out = _linear(layer.mlp.dense_4h_to_h)
        blocks.append(BlockWeights(
            ln1=_norm(layer.input_layernorm), ln2=_norm(layer.post_attention_layernorm),
            W_Q=qkv[:, 0].transpose(1, 2), W_K=qkv[:, 1].transpose(1, 2), W_V=qkv[:, 2].transpose(1, 2),
            W_O=_heads_out(w_o, n_head), b_Q=qkv_bias[:, 0], b_K=qkv_bias[:, 1], b_V=qkv_bias[:, 2],
            b_O=_bias_or_zeros(b_o, d_model), W_in=w_in, b_in=_bias_or_zeros(b_in, c.intermediate_size),
            W_gate=None, b_gate=None, W_out=w_out, b_out=_bias_or_zeros(b_out, d_model)))
    w_u, b_u = _unembedding(model)
    return ModelWeights(arch, neox.embed_in.weight.detach(), None, tuple(blocks), _norm(neox.final_layer_norm),
                        w_u, b_u, inv_freq, rotary_scale, _tied(model))


def _llama_windows(c) -> tuple[int | None, ...]:
    """Per layer, the sliding window (Mistral: every layer when `sliding_window` is set; Qwen2: the
    layers its `layer_types` mark as sliding)."""
    window = getattr(c, "sliding_window", None)
    layer_types = getattr(c, "layer_types", None)
    if layer_types is not None and c.model_type != "mistral":
        return tuple(window if kind == "sliding_attention" else None for kind in layer_types)
    return (window,) * c.num_hidden_layers


def convert_llama(model) -> ModelWeights:
    """Llama, Qwen2 and Mistral share one layout (model.model.layers[i].self_attn / .mlp)."""
    c, base = model.config, model.model
    n_head, n_kv_head = c.num_attention_heads, c.num_key_value_heads
    d_head = getattr(c, "head_dim", None) or c.hidden_size // n_head
    inv_freq, rotary_scale = _rotary_module(model)
    arch = Architecture(
        family=c.model_type, n_layer=c.num_hidden_layers, d_model=c.hidden_size, n_head=n_head, n_kv_head=n_kv_head,
        d_head=d_head, d_mlp=c.intermediate_size, vocab=c.vocab_size, n_ctx=c.max_position_embeddings,
        norm="rmsnorm", eps=c.rms_norm_eps, post_norm=False, parallel=False, shared_norm=False, final_norm=True,
        learned_positions=False, rotary_dim=2 * inv_freq.numel(), rotary_interleaved=False,
        activation=_activation(c.hidden_act), gated=True, attn_scale=(d_head ** 0.5,) * c.num_hidden_layers,
        window=_llama_windows(c))
    blocks = tuple(_separate_qkv_block(layer.self_attn, n_head, n_kv_head, layer.input_layernorm,
                                       layer.post_attention_layernorm, layer.mlp.up_proj, layer.mlp.gate_proj,
                                       layer.mlp.down_proj) for layer in base.layers)
    w_u, b_u = _unembedding(model)
    return ModelWeights(arch, base.embed_tokens.weight.detach(), None, blocks, _norm(base.norm), w_u, b_u,
                        inv_freq, rotary_scale, _tied(model))


CONVERTERS = {"gpt2": convert_gpt2, "openai-gpt": convert_openai_gpt, "gpt_neo": convert_gpt_neo, "gptj": convert_gptj,
              "gpt_neox": convert_gpt_neox, "llama": convert_llama, "qwen2": convert_llama, "mistral": convert_llama}
assert set(CONVERTERS) == set(FAMILIES)


def convert(model) -> ModelWeights:
    """The model's weights in the canonical layout (views of its parameters, never copies that
    could drift, never written)."""
    converter = CONVERTERS.get(model.config.model_type)
    if converter is None:
        raise UnsupportedModel(f"it is a {model.config.model_type} model; {supported_families_sentence()}")
    storages = frozenset(p.untyped_storage().data_ptr() for p in model.parameters())
    return replace(converter(model), parameter_storages=storages)


_converted: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_converted_lock = threading.Lock()


def weights_of(model) -> ModelWeights:
    """The canonical weights of `model`, converted once per model object (a model shared by every
    student is converted once, and the model itself is never touched)."""
    with _converted_lock:
        found = _converted.get(model)
    if found is None:
        found = convert(model)
        with _converted_lock:
            _converted[model] = found
    return found
