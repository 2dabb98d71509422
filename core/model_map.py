"""The map of the model: every part of a loaded model laid out from its own weights and switches,
what each part costs, and (on a prompt) what each part did.

Parts are laid out bottom to top, as in the circuits diagrams: the residual stream is the
vertical line at x = 0, the embeddings at the bottom, then each block, then the final norm and
the unembedding. A part that reads the stream sits to its right; an addition is a ⊕ on the
stream; a post-LN norm sits on the stream itself. Parameter counts come from the weights the
glass box reads: a tensor counts when it is (a view of) one of the model's parameters, so
absent biases count nothing and a tied unembedding is counted once.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from core.architectures import ModelWeights, weights_of

# which lesson explains each kind of part
LESSON_OF = {"tokens": 1, "embed": 2, "position": 3, "norm": 5, "attention": 4, "head": 4, "mlp": 5, "add": 5,
             "unembed": 6, "block": 4}


@dataclass(frozen=True)
class Part:
    key: str  # a data path: "embed", "blocks.3.attn.head.2", "blocks.3.mlp", "ln_final", …
    label: str  # the text in its box
    kind: str  # a key of LESSON_OF
    layer: int | None
    x: float  # centre
    y: float
    width: float
    shape: str  # its weights' shapes
    parameters: int
    does: str  # one line: what it does
    head: int | None = None

    @property
    def lesson(self) -> int:
        return LESSON_OF[self.kind]


@dataclass
class ModelMap:
    parts: list[Part] = field(default_factory=list)
    stream_top: float = 0.0
    shown_layers: list[int] = field(default_factory=list)  # the rest are collapsed into one box
    collapsed: tuple[int, int] | None = None  # (first, last) collapsed layer, inclusive
    group_size: int = 1  # query heads per key/value head (heads of a group are shaded alike)

    @property
    def total_parameters(self) -> int:
        """All parameters: every part drawn (a collapsed box holds its blocks'), heads aside, as
        they are inside their attention part."""
        return sum(p.parameters for p in self.parts if p.kind != "head")


def _counted(tensors, storages: frozenset[int]) -> int:
    """Elements of the tensors that are (views of) model parameters: an absent bias, stored as
    zeros, counts nothing."""
    return sum(t.numel() for t in tensors if t is not None and t.untyped_storage().data_ptr() in storages)


def _storages(weights: ModelWeights) -> frozenset[int]:
    return weights.parameter_storages


def _shape(*tensors_and_names) -> str:
    return "; ".join(f"{name} {' × '.join(str(d) for d in tensor.shape)}" for name, tensor in tensors_and_names
                     if tensor is not None)


def head_parameters(weights: ModelWeights, layer: int, head: int) -> int:
    """A query head's own slices of W_Q and W_O (and b_Q), plus its share of its key/value head."""
    block, arch, storages = weights.blocks[layer], weights.arch, _storages(weights)
    kv = arch.kv_head_of(head)
    own = _counted([block.W_Q[head], block.b_Q[head], block.W_O[head]], storages)
    shared = _counted([block.W_K[kv], block.W_V[kv], block.b_K[kv], block.b_V[kv]], storages)
    within = head % arch.group_size  # the group's heads share its key/value weights out evenly
    return own + shared // arch.group_size + (1 if within < shared % arch.group_size else 0)


def attention_parameters(weights: ModelWeights, layer: int) -> int:
    block = weights.blocks[layer]
    return _counted([block.W_Q, block.W_K, block.W_V, block.W_O, block.b_Q, block.b_K, block.b_V, block.b_O],
                    _storages(weights))


def mlp_parameters(weights: ModelWeights, layer: int) -> int:
    block = weights.blocks[layer]
    return _counted([block.W_in, block.b_in, block.W_gate, block.b_gate, block.W_out, block.b_out], _storages(weights))


def norm_parameters(weights: ModelWeights, norm) -> int:
    return 0 if norm is None else _counted([norm.weight, norm.bias], _storages(weights))


def block_parameters(weights: ModelWeights, layer: int) -> int:
    block = weights.blocks[layer]
    return (attention_parameters(weights, layer) + mlp_parameters(weights, layer)
            + norm_parameters(weights, block.ln1) + norm_parameters(weights, block.ln2))


def build_map(model, max_layers: int = 6, small: bool = False) -> ModelMap:
    """The map of `model`. More than `max_layers` blocks: the first two and the last two are drawn
    and the others collapse into one box. `small`: one block stands for all ("× n_layer"), for the
    "you are here" map beside every lesson."""
    weights = weights_of(model)
    arch = weights.arch
    out = ModelMap(group_size=arch.group_size)
    y = 0.0

    def add(part: Part) -> None:
        out.parts.append(part)

    add(Part("tokens", "text → tokens", "tokens", None, 0, y, 1.6, f"vocabulary {arch.vocab:,}", 0,
             "the tokenizer cuts the text into tokens; each becomes an id"))
    y += 1
    add(Part("embed", "token embedding", "embed", None, 0 if not arch.learned_positions else -0.9, y, 1.6,
             _shape(("W_E", weights.W_E)), _counted([weights.W_E], _storages(weights)),
             "each token id picks its row: the token's first vector"))
    if arch.learned_positions:
        add(Part("pos_embed", "+ position", "position", None, 0.9, y, 1.4, _shape(("W_pos", weights.W_pos)),
                 _counted([weights.W_pos], _storages(weights)), "each position adds its own learned vector"))
    y += 1
    layers = list(range(arch.n_layer))
    if small:
        layers = [0]
    elif arch.n_layer > max_layers:
        out.collapsed = (2, arch.n_layer - 3)
        layers = [0, 1, None, arch.n_layer - 2, arch.n_layer - 1]
    for layer in layers:
        if layer is None:
            first, last = out.collapsed
            add(Part(f"blocks.{first}-{last}", f"blocks {first}–{last} (same shape)", "block", None, 1.6, y, 3.0,
                     f"{last - first + 1} blocks", sum(block_parameters(weights, l) for l in range(first, last + 1)),
                     "the same block again, with its own weights"))
            y += 1.2
            continue
        out.shown_layers.append(layer)
        y = _block_parts(weights, layer, y, add, small)
    if arch.final_norm:
        add(Part("ln_final", "final " + ("RMSNorm" if arch.norm == "rmsnorm" else "LayerNorm"), "norm", None, 1.2, y,
                 1.8, _shape(("γ", weights.ln_final.weight)), norm_parameters(weights, weights.ln_final),
                 "rescales the stream once more before the output"))
        y += 1
    unembed_parameters = 0 if weights.tied else _counted([weights.W_U], _storages(weights))
    unembed_parameters += _counted([weights.b_U], _storages(weights))
    add(Part("unembed", "unembedding → logits", "unembed", None, 0, y, 2.2, _shape(("W_U", weights.W_U)),
             unembed_parameters, "one score per vocabulary token" + (" (W_U is W_E, shared)" if weights.tied else "")))
    out.stream_top = y
    return out


def _block_parts(weights: ModelWeights, layer: int, y: float, add, small: bool) -> float:
    """Add one block's parts from height `y`; returns the height after it."""
    arch, block = weights.arch, weights.blocks[layer]
    p = f"blocks.{layer}"
    name = "RMSNorm" if arch.norm == "rmsnorm" else "LayerNorm"
    number = f" (× {arch.n_layer} blocks)" if small else f" {layer}"  # the small map's one block stands for all

    def norm_part(which: str, norm, x: float, at: float) -> None:
        add(Part(f"{p}.{which}", f"{name} {which[-1]}", "norm", layer, x, at, 1.3, _shape(("γ", norm.weight)),
                 norm_parameters(weights, norm), "rescales the vector to a steady size"))

    def attention_part(x: float, at: float) -> None:
        shared = "" if arch.group_size == 1 else f", {arch.n_kv_head} key/value heads"
        window = f", sees the last {arch.window[layer]} tokens" if arch.window[layer] else ""
        add(Part(f"{p}.attn", f"attention{number}", "attention", layer, x, at, 2.4,
                 _shape(("W_Q", block.W_Q), ("W_K", block.W_K), ("W_V", block.W_V), ("W_O", block.W_O)),
                 attention_parameters(weights, layer),
                 f"{arch.n_head} heads move information between positions{shared}{window}"))
        for head in range(arch.n_head):
            add(Part(f"{p}.attn.head.{head}", f"h{head}", "head", layer, x - 1.0 + 2.0 * (head + 0.5) / arch.n_head,
                     at + 0.42, 2.0 / arch.n_head, f"q, k, v: {arch.d_head} each", head_parameters(weights, layer, head),
                     f"head {head}: reads key/value head {arch.kv_head_of(head)}", head=head))

    def mlp_part(x: float, at: float) -> None:
        gated = "gated MLP (SwiGLU)" if arch.gated else "MLP"
        add(Part(f"{p}.mlp", f"{gated}{number}", "mlp", layer, x, at, 2.4,
                 _shape(("W_gate", block.W_gate), ("W_in", block.W_in), ("W_out", block.W_out)),
                 mlp_parameters(weights, layer), f"{arch.d_mlp} neurons, one position at a time"))

    def plus(key: str, at: float) -> None:
        add(Part(f"{p}.{key}", "⊕", "add", layer, 0, at, 0.4, "", 0, "adds the part's output to the stream"))

    if arch.post_norm:
        attention_part(2.0, y)
        plus("add_attn", y + 0.6)
        norm_part("ln1", block.ln1, 0, y + 1.2)
        mlp_part(2.0, y + 2.0)
        plus("add_mlp", y + 2.6)
        norm_part("ln2", block.ln2, 0, y + 3.2)
        return y + 4.2
    if arch.parallel:
        norm_part("ln1", block.ln1, 1.2, y)
        if block.ln2 is not None:
            norm_part("ln2", block.ln2, 4.0, y)
        attention_part(1.6, y + 1.0)
        mlp_part(4.4, y + 1.0)
        plus("add", y + 1.8)
        return y + 2.8
    norm_part("ln1", block.ln1, 1.2, y)
    attention_part(2.0, y + 1.0)
    plus("add_attn", y + 1.7)
    norm_part("ln2", block.ln2, 1.2, y + 2.4)
    mlp_part(2.0, y + 3.2)
    plus("add_mlp", y + 3.9)
    return y + 4.8


def design_differences(first, second) -> list[str]:
    """What differs between two designs (two `Architecture`s), in words, biggest first."""
    out = []
    def name_of(arch) -> str:
        return "post-LN" if arch.post_norm else "parallel blocks" if arch.parallel else "pre-LN"
    pairs = [
        ("norm", lambda a: "RMSNorm" if a.norm == "rmsnorm" else "LayerNorm"),
        ("block wiring", name_of),
        ("positions", lambda a: f"rotary on {a.rotary_dim} of {a.d_head} dims" if a.rotary_dim else "learned, added"),
        ("MLP", lambda a: f"gated ({a.activation}), {a.d_mlp} wide" if a.gated else f"{a.activation}, {a.d_mlp} wide"),
        ("heads", lambda a: f"{a.n_head} query / {a.n_kv_head} key-value"),
        ("layers", lambda a: str(a.n_layer)), ("width", lambda a: str(a.d_model)),
        ("context", lambda a: f"{a.n_ctx:,} tokens"), ("vocabulary", lambda a: f"{a.vocab:,}"),
        ("local windows", lambda a: ", ".join(str(w) for w in sorted({w for w in a.window if w})) or "none"),
    ]
    for label, describe in pairs:
        if describe(first) != describe(second):
            out.append(f"{label}: {describe(first)} vs {describe(second)}")
    return out


def inside_of(model, key: str) -> list[tuple[str, str, int, str]]:
    """A head or an MLP opened up: (piece, shape, parameters, what it does), from its weights."""
    weights = weights_of(model)
    arch, storages = weights.arch, weights.parameter_storages
    parts = key.split(".")
    block = weights.blocks[int(parts[1])]

    def row(name: str, tensor, does: str) -> tuple[str, str, int, str]:
        return name, " × ".join(str(d) for d in tensor.shape), _counted([tensor], storages), does

    if parts[2] == "attn" and len(parts) == 5:
        head = int(parts[4])
        kv = arch.kv_head_of(head)
        shared = "" if arch.group_size == 1 else f" (shared with {arch.group_size - 1} other query heads)"
        rows = [row(f"W_Q[{head}]", block.W_Q[head], "turns the stream into this head's query"),
                row(f"W_K[{kv}]", block.W_K[kv], "turns each earlier token into a key" + shared),
                row(f"W_V[{kv}]", block.W_V[kv], "turns each earlier token into a value" + shared)]
        if arch.rotary_dim:
            rows.append(("rotary turn", f"{arch.rotary_dim} of {arch.d_head} dims", 0,
                         "turns query and key by their positions (no weights)"))
        rows.append(("softmax(q·k / scale)", "[query, key]", 0, "the attention pattern (no weights)"))
        rows.append(row(f"W_O[{head}]", block.W_O[head], "writes the head's output back to the stream's width"))
        return rows
    if parts[2] == "mlp":
        rows = []
        if block.W_gate is not None:
            rows.append(row("W_gate", block.W_gate, f"the gate, through {arch.activation}"))
        rows.append(row("W_in" + (" (up)" if block.W_gate is not None else ""), block.W_in,
                        "widens the vector to the neurons" if block.W_gate is None else "the up projection"))
        rows.append(("activation", f"{arch.d_mlp} neurons", 0,
                     f"{arch.activation}(gate) × up" if block.W_gate is not None else arch.activation))
        rows.append(row("W_out" + (" (down)" if block.W_gate is not None else ""), block.W_out,
                        "brings the neurons back to the stream's width"))
        return rows
    raise KeyError(key)


# --- what each part costs ------------------------------------------------------------------------
@dataclass(frozen=True)
class Costs:
    parameters: int
    matrix_parameters: int  # in the matrices a token is multiplied by (not the embedding look-up)
    flops_rule: int  # 2 × parameters: the usual rule of thumb per token
    flops_matrices: int  # 2 × matrix parameters: one multiply and one add per weight a token meets
    flops_attention: int  # scores and weighted sums at this context: 4 × layers × context × heads × d_head
    context: int
    weights_bytes_float32: int
    weights_bytes_bfloat16: int
    kv_cache_bytes_per_token: int  # 16-bit keys and values

    @property
    def flops_per_token(self) -> int:
        return self.flops_matrices + self.flops_attention


def model_costs(model, context: int) -> Costs:
    """Parameters, FLOPs per token of a forward pass at `context` tokens, and memory."""
    from core.attention import kv_cache_bytes_per_token

    weights = weights_of(model)
    arch = weights.arch
    parameters = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
    matrices = sum(t.numel() for block in weights.blocks
                   for t in (block.W_Q, block.W_K, block.W_V, block.W_O, block.W_in, block.W_gate, block.W_out)
                   if t is not None) + weights.W_U.numel()
    attention = 4 * arch.n_layer * context * arch.n_head * arch.d_head
    return Costs(parameters, matrices, 2 * parameters, 2 * matrices, attention, context, 4 * parameters,
                 2 * parameters, kv_cache_bytes_per_token(arch.n_layer, arch.n_kv_head, arch.d_head, 2))


# --- what each part did on a prompt ----------------------------------------------------------------
def prompt_numbers(trace) -> dict[str, str]:
    """Per part key, a short real number from the trace: the stream's length after each addition
    (at the last position) and each head's mean attention entropy over the prompt's queries."""
    numbers: dict[str, str] = {}
    for layer in range(trace.n_layer):
        p = f"blocks.{layer}"
        after_attention = trace["resid_mid", layer] if f"{p}.resid_mid" in trace else None
        if after_attention is not None and not trace.arch.post_norm:
            numbers[f"{p}.add_attn"] = f"‖x‖ {float(after_attention[-1].norm()):.1f}"
        key = f"{p}.add" if trace.arch.parallel else f"{p}.add_mlp"
        numbers[key] = f"‖x‖ {float(trace['resid_post', layer][-1].norm()):.1f}"
        numbers.update({f"{p}.attn.head.{head}": f"entropy {value:.2f}"
                        for head, value in enumerate(head_entropies(trace, layer).tolist())})
    return numbers


def head_entropies(trace, layer: int) -> torch.Tensor:
    """Each head's attention entropy in nats, averaged over the queries: 0 = always one key,
    ln(n) = spread evenly over n keys. [head]"""
    pattern = trace["pattern", layer]  # [head, query, key]
    entropy = -(pattern * torch.log(pattern.clamp_min(1e-12))).sum(-1)  # [head, query]
    return entropy.mean(-1)  # [head]


def uniform_entropy(n: int) -> float:
    return math.log(n)
