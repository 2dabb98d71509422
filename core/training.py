"""The course's trainer: a small GPT-2-style or Llama-style model trained from scratch on CPU.

It builds the bundled course model and is the trainer the Training lesson runs. A
`Trainer` holds all of a run's state (model, optimizer, data sampler), so a run can be
stepped a chunk at a time, paused and resumed, and gives the same numbers as one
uninterrupted run with the same seed.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import torch
from core.hf import MODEL_BUILD_LOCK, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM


@dataclass
class TrainConfig:
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    block_size: int = 128  # context length: tokens per training example
    batch_size: int = 32
    learning_rate: float = 3e-3
    min_lr_ratio: float = 0.1  # the cosine decay ends at learning_rate * min_lr_ratio
    warmup_steps: int = 100
    max_steps: int = 2000
    dropout: float = 0.0
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    seed: int = 0
    use_residual: bool = True  # False: each block's halves replace the stream instead of adding to it
    use_layernorm: bool = True  # False: every LayerNorm (ln_1, ln_2, ln_f) is skipped
    accumulation_steps: int = 1  # micro-batches of batch_size whose gradients make one step (effective batch ×)
    schedule: str = "cosine"  # after warm-up: "cosine" or "linear" decay to min_lr_ratio, or "constant"
    precision: str = "float32"  # "bfloat16": the forward and backward under CPU autocast (weights stay float32)
    architecture: str = "gpt2"  # "gpt2" (2019: LayerNorm, learned positions, GELU) or "llama" (RMSNorm,
    #                             rotary positions, SwiGLU, grouped-query attention)
    n_kv_head: int = 0  # llama: key/value heads (0: one per query head); must divide n_head

    @property
    def runs_own_forward(self) -> bool:
        """A switch of the experiment is off: the model runs only through `forward_logits`, not
        through the Hugging Face forward, the glass box or a saved copy (all of which add and norm)."""
        return not (self.use_residual and self.use_layernorm)


SCHEDULES = ("cosine", "linear", "constant")


def schedule_name(config: TrainConfig) -> str:
    """The schedule in words, for a chart's title."""
    after = {"cosine": "cosine decay", "linear": "linear decay", "constant": "constant"}[config.schedule]
    return f"warm-up, then {after}" if config.warmup_steps else after


def config_problem(config: TrainConfig) -> str | None:
    """The one sentence that says why no model can be built with these settings, or None."""
    if config.architecture != "gpt2" and not (config.use_residual and config.use_layernorm):
        return ("Switching off residual connections or LayerNorm is an experiment on the GPT-2 design; "
                "switch them back on, or pick the GPT-2 design.")
    if config.n_embd % config.n_head:
        return f"The width ({config.n_embd}) must be a multiple of the number of heads ({config.n_head})."
    if config.architecture == "llama" and (config.n_embd // config.n_head) % 2:
        return (f"Rotary positions turn each head's numbers in pairs, so a head's width (here {config.n_embd} ÷ "
                f"{config.n_head} = {config.n_embd // config.n_head}) must be even in the Llama design.")
    if config.architecture == "llama" and config.n_kv_head and config.n_head % config.n_kv_head:
        return f"The heads ({config.n_head}) must be a multiple of the key/value heads ({config.n_kv_head})."
    return None


def learning_rate_at(step: int, config: TrainConfig) -> float:
    """Linear warm-up to the peak, then the config's schedule: cosine or linear decay to
    `min_lr_ratio` of the peak at `max_steps`, or constant at the peak."""
    peak = config.learning_rate
    if step < config.warmup_steps:
        return peak * (step + 1) / config.warmup_steps
    if config.schedule == "constant":
        return peak
    progress = min(1.0, (step - config.warmup_steps) / max(1, config.max_steps - config.warmup_steps))
    floor = peak * config.min_lr_ratio
    if config.schedule == "linear":
        return peak - (peak - floor) * progress
    return floor + 0.5 * (peak - floor) * (1 + math.cos(math.pi * progress))


def own_forward_note(config: TrainConfig) -> str | None:
    """One sentence for a run with residual connections or LayerNorm switched off (else None): what
    of it is real, and what it cannot have."""
    if not config.runs_own_forward:
        return None
    off = " and ".join(name for name, on in (("residual connections", config.use_residual),
                                             ("LayerNorm", config.use_layernorm)) if not on)
    return (f"This run trains with {off} switched off, which only the lesson's own training forward can run: its "
            "losses and samples come from that forward. The Hugging Face format, the other lessons, the attention "
            "snapshots and the copy test all run a model with them on, so this run draws no snapshots or copy scores "
            "and cannot be saved or used in the other lessons (there it would be a different model).")


def warmup_note(config: TrainConfig) -> str | None:
    """One sentence when the warm-up is not shorter than the run (the schedule after it never
    begins and the learning rate only rises), else None. Training still runs: it may be meant."""
    if config.warmup_steps < config.max_steps:
        return None
    last, peak = learning_rate_at(config.max_steps - 1, config), config.learning_rate
    reached = (f"reaching the peak of {peak:g} only at its last step" if last >= peak
               else f"to {last:.3g} at its last step, below the peak of {peak:g}")
    return (f"The warm-up ({config.warmup_steps:,} steps) is not shorter than the run ({config.max_steps:,} steps): "
            f"the learning rate rises for the whole run, {reached}, and the schedule after the warm-up never begins.")


def schedule_curve(config: TrainConfig, points: int = 200) -> tuple[list[int], list[float]]:
    """The learning rate at evenly spaced steps of the whole run, to draw before training starts."""
    steps = sorted({round(i * (config.max_steps - 1) / max(1, points - 1)) for i in range(points)})
    return steps, [learning_rate_at(step, config) for step in steps]


def gated_mlp_width(n_embd: int) -> int:
    """The hidden width of a SwiGLU MLP with about the parameters of a 4 × n_embd GELU MLP (it has
    three matrices, not two): 8/3 × n_embd, rounded up to a multiple of 8, as in Llama."""
    return -(-8 * n_embd // 3 // 8) * 8


def new_model(config: TrainConfig, vocab_size: int, eos_token_id: int):
    torch.manual_seed(config.seed)
    if config.architecture == "llama":
        model_config = LlamaConfig(
            vocab_size=vocab_size, max_position_embeddings=config.block_size, hidden_size=config.n_embd,
            intermediate_size=gated_mlp_width(config.n_embd), num_hidden_layers=config.n_layer,
            num_attention_heads=config.n_head, num_key_value_heads=config.n_kv_head or config.n_head,
            attention_dropout=config.dropout, tie_word_embeddings=True, rms_norm_eps=1e-5,
            bos_token_id=eos_token_id, eos_token_id=eos_token_id, pad_token_id=None)
        model_class = LlamaForCausalLM
    else:
        model_config = GPT2Config(
            vocab_size=vocab_size, n_positions=config.block_size, n_embd=config.n_embd,
            n_layer=config.n_layer, n_head=config.n_head, resid_pdrop=config.dropout,
            embd_pdrop=config.dropout, attn_pdrop=config.dropout,
            bos_token_id=eos_token_id, eos_token_id=eos_token_id,
        )
        model_class = GPT2LMHeadModel
    with MODEL_BUILD_LOCK:  # see core.hf: building models is not thread-safe
        model = model_class(model_config)
    model.loss_type = "ForCausalLM"  # the loss `labels=` computes (said here, transformers warns when it must guess)
    return model


def forward_logits(model: GPT2LMHeadModel, input_ids: torch.Tensor, use_residual: bool = True,
                   use_layernorm: bool = True) -> torch.Tensor:
    """The training forward of the project's own model, batched and differentiable, over the
    weights of a Hugging Face GPT-2. The two switches are the Training lesson's experiment; with
    both on it equals the Hugging Face forward. [batch, pos] ids -> [batch, pos, vocab] logits."""
    gpt = model.transformer
    n_pos = input_ids.shape[1]
    norm = (lambda module, x: module(x)) if use_layernorm else (lambda module, x: x)
    future = torch.ones(n_pos, n_pos, dtype=torch.bool).triu(diagonal=1)  # [query, key]
    causal = torch.zeros(1, 1, n_pos, n_pos).masked_fill(future, torch.finfo(torch.float32).min)  # added to scores
    x = gpt.drop(gpt.wte(input_ids) + gpt.wpe(torch.arange(n_pos)))  # [batch, pos, d_model]
    for block in gpt.h:
        attention = block.attn(norm(block.ln_1, x), attention_mask=causal)[0]  # [batch, pos, d_model]
        x = x + attention if use_residual else attention
        mlp = block.mlp(norm(block.ln_2, x))  # [batch, pos, d_model]
        x = x + mlp if use_residual else mlp
    return model.lm_head(norm(gpt.ln_f, x))  # [batch, pos, vocab]


def next_token_loss(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of predicting each token from the ones before it (what `labels=` does)."""
    return torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                             input_ids[:, 1:].reshape(-1))


def layer_groups(model) -> dict[str, list[torch.nn.Parameter]]:
    """The model's parameters by layer: embeddings, each block, the final norm (GPT-2 or Llama)."""
    base = model.base_model
    blocks, final = (base.h, base.ln_f) if hasattr(base, "h") else (base.layers, base.norm)
    groups = {"embeddings": [model.get_input_embeddings().weight] + ([base.wpe.weight] if hasattr(base, "wpe") else [])}
    for index, block in enumerate(blocks):
        groups[f"block {index}"] = list(block.parameters())
    groups["final LayerNorm" if hasattr(base, "ln_f") else "final RMSNorm"] = list(final.parameters())
    return groups


def group_norm(tensors: list[torch.Tensor]) -> float:
    """The Euclidean norm of several tensors taken together; 0 for none (a group that got no gradient:
    the final LayerNorm of a run with LayerNorm switched off)."""
    if not tensors:
        return 0.0
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t) for t in tensors])))


@dataclass
class StepResult:
    step: int  # the step just taken, counted from 1
    loss: float
    learning_rate: float
    grad_norm: float  # before clipping
    tokens: int  # tokens in this step's batch
    seconds: float
    layer_grad_norms: dict[str, float] | None = None  # ‖gradient‖ per layer group, before clipping
    update_ratios: dict[str, float] | None = None  # ‖Δweights‖ / ‖weights‖ per layer group

    @property
    def diverged(self) -> bool:
        return not math.isfinite(self.loss)


def document_starts(ids: torch.Tensor, eos_token_id: int, block_size: int) -> torch.Tensor:
    """Where a window of `block_size` tokens can begin at the start of a document: position 0 and
    every position right after an end-of-text token. [n_ids] -> [n_starts]"""
    starts = torch.cat([torch.zeros(1, dtype=torch.long), (ids == eos_token_id).nonzero().flatten() + 1])  # [n_docs + 1]
    return starts[starts <= len(ids) - block_size]


class Trainer:
    """`start_at_documents`: every training example begins at the start of a document instead of
    anywhere in the text, so that a token's position in the context is its position in its
    document (the copy task needs this; the stories do not)."""

    def __init__(self, config: TrainConfig, train_ids: torch.Tensor, val_ids: torch.Tensor,
                 vocab_size: int, eos_token_id: int, start_at_documents: bool = False):
        if len(train_ids) <= config.block_size + 1 or len(val_ids) <= config.block_size + 1:
            raise ValueError("the text is too short for this context length")
        if problem := config_problem(config):
            raise ValueError(problem)
        self.config = config
        self.train_ids = train_ids  # [n_train_tokens]
        self.val_ids = val_ids  # [n_val_tokens]
        self.train_starts = self.val_starts = None  # None: an example may begin anywhere
        if start_at_documents:
            self.train_starts = document_starts(train_ids, eos_token_id, config.block_size)  # [n_starts]
            self.val_starts = document_starts(val_ids, eos_token_id, config.block_size)  # [n_starts]
            if len(self.train_starts) == 0 or len(self.val_starts) == 0:
                raise ValueError("no document is followed by a full context of text")
        self.model = new_model(config, vocab_size, eos_token_id)
        decay = [p for n, p in self.model.named_parameters() if p.dim() >= 2]
        no_decay = [p for n, p in self.model.named_parameters() if p.dim() < 2]
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": config.weight_decay},
             {"params": no_decay, "weight_decay": 0.0}],
            lr=config.learning_rate, betas=(0.9, 0.95))
        self.sampler = torch.Generator().manual_seed(config.seed)
        self.step_count = 0

    def batch(self, ids: torch.Tensor, generator: torch.Generator,
              allowed_starts: torch.Tensor | None = None, window: int | None = None) -> torch.Tensor:
        """`batch_size` random windows of `window` tokens (default `block_size`), beginning anywhere
        or at one of `allowed_starts`: [batch, window]."""
        size = window or self.config.block_size
        if allowed_starts is None:
            starts = torch.randint(0, len(ids) - size, (self.config.batch_size,), generator=generator)  # [batch]
        else:
            picks = torch.randint(0, len(allowed_starts), (self.config.batch_size,), generator=generator)  # [batch]
            starts = allowed_starts[picks]  # [batch]
        return torch.stack([ids[s:s + size] for s in starts.tolist()])  # [batch, block_size]

    def loss(self, inputs: torch.Tensor) -> torch.Tensor:
        if not self.config.runs_own_forward:
            return self.model(input_ids=inputs, labels=inputs).loss  # the model shifts labels by one
        return next_token_loss(self.own_forward(inputs), inputs)

    def own_forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """The model with this run's switches (forward_logits): [batch, pos] ids -> [batch, pos, vocab] logits."""
        return forward_logits(self.model, inputs, self.config.use_residual, self.config.use_layernorm)

    def step(self, measure_layers: bool = False, text: torch.Tensor | None = None,
             window: int | None = None) -> StepResult:
        """One optimisation step. With `measure_layers`, also the gradient norm and the
        update-to-weight ratio of each layer group (what the Training lesson draws). With `text`
        and `window`, this step's examples are windows of `window` tokens of that text instead (the
        course model build's copying warm-up)."""
        began = time.perf_counter()
        self.model.train()
        lr = learning_rate_at(self.step_count, self.config)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        micro_steps = max(1, self.config.accumulation_steps)
        loss, tokens = torch.zeros(()), 0
        for _ in range(micro_steps):  # gradients add up over micro-batches: one step on micro_steps × batch_size
            inputs = (self.batch(self.train_ids, self.sampler, self.train_starts) if text is None
                      else self.batch(text, self.sampler, window=window))  # [batch, block_size or window]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.config.precision == "bfloat16"):
                micro_loss = self.loss(inputs) / micro_steps  # the mean over the whole effective batch
            micro_loss.backward()
            loss, tokens = loss + micro_loss.detach().float(), tokens + inputs.numel()
        layer_grads = before = None
        if measure_layers:
            groups = layer_groups(self.model)
            layer_grads = {name: group_norm([p.grad for p in params if p.grad is not None])
                           for name, params in groups.items()}
            before = {name: [p.detach().clone() for p in params] for name, params in groups.items()}
        max_norm = self.config.grad_clip if self.config.grad_clip > 0 else math.inf  # 0: no clipping, as in nanoGPT
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm)  # (the norm before clipping)
        self.optimizer.step()
        self.step_count += 1
        ratios = None
        if measure_layers:
            ratios = {name: group_norm([p.detach() - old for p, old in zip(params, before[name])])
                      / max(group_norm(before[name]), 1e-12) for name, params in groups.items()}
        return StepResult(self.step_count, loss.item(), lr, grad_norm.item(), tokens,
                          time.perf_counter() - began, layer_grads, ratios)

    @torch.no_grad()
    def validation_loss(self, batches: int = 8) -> float:
        """Mean loss on `batches` fixed validation batches (the same ones every call)."""
        self.model.eval()
        generator = torch.Generator().manual_seed(12345)
        losses = [self.loss(self.batch(self.val_ids, generator, self.val_starts)).item() for _ in range(batches)]
        return sum(losses) / len(losses)

    def config_dict(self) -> dict:
        return asdict(self.config)
