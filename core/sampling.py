"""Lesson 6's math: from the logits of the last position to a chosen token, and the generation loop.

Everything works on log-probabilities, so no temperature (0 included) overflows or gives NaN.
The order is Hugging Face `generate`'s: temperature, then top-k, then top-p, then sampling
(`transformers.generation.utils`: TemperatureLogitsWarper → TopKLogitsWarper → TopPLogitsWarper).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from collections.abc import Callable

import torch

from core.architectures import weights_of
from core.glassbox import Trace, norm
from core.residual import direct_logit

GREEDY_BELOW = 1e-3  # temperatures at or below this are the T → 0 limit: all mass on the argmax
MASS_TOLERANCE = 1e-6  # top-p: a mass within this of p counts as reaching p (rounding of float32 inputs)


@dataclass(frozen=True)
class Strategy:
    """How the next token is picked. temperature 0 means greedy; top_k 0 and top_p 1 mean "off"."""
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0

    @property
    def is_greedy(self) -> bool:
        return self.temperature <= GREEDY_BELOW


def log_softmax_with_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """log softmax(logits / T) over the last dimension, in float64. T → 0 is the greedy limit:
    log 1 on the largest logit (split evenly among ties), −∞ elsewhere."""
    logits = logits.double()  # [..., vocab]
    if temperature <= GREEDY_BELOW:
        is_max = logits == logits.max(dim=-1, keepdim=True).values  # [..., vocab]
        return torch.where(is_max, -torch.log(is_max.sum(dim=-1, keepdim=True).double()),
                           torch.full_like(logits, -math.inf))
    return torch.log_softmax(logits / temperature, dim=-1)  # [..., vocab]


def entropy_bits(log_probs: torch.Tensor) -> float:
    """Shannon entropy of a distribution given as log-probabilities (0 · log 0 counted as 0)."""
    probs = log_probs.exp()
    terms = torch.where(probs > 0, -probs * log_probs, torch.zeros_like(probs))
    return float(terms.sum() / math.log(2))


def top_k_keep(log_probs: torch.Tensor, k: int) -> torch.Tensor:
    """Which tokens top-k keeps: every token at least as likely as the k-th (ties at the cut are
    all kept, as in Hugging Face's TopKLogitsWarper). k = 0 keeps everything."""
    if k <= 0 or k >= log_probs.numel():
        return log_probs > -math.inf
    kth = log_probs.topk(k).values[-1]
    return log_probs >= kth  # [vocab]


def top_p_keep(log_probs: torch.Tensor, p: float) -> torch.Tensor:
    """Which tokens top-p (nucleus) keeps: a token is kept when the tokens ranked strictly above it
    hold less than p of the probability. This is the smallest set of most likely tokens whose mass
    reaches p, the most likely token always included; tokens tied at the cut are all kept."""
    probs = log_probs.double().exp()  # [vocab]
    if p >= 1.0:
        return probs > 0
    sorted_probs, _ = probs.sort(descending=True)
    strictly_above = sorted_probs.cumsum(0) - sorted_probs  # [vocab] mass ranked above each (sorted)
    # ties: a token's mass above is that of the first of its tied group, so the group stays together
    first_of_group = torch.searchsorted(-sorted_probs, -probs, right=False)  # [vocab] rank of first tie
    return ((strictly_above[first_of_group] < p - MASS_TOLERANCE) | (first_of_group == 0)) & (probs > 0)


def renormalise(log_probs: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """log-probabilities restricted to the kept tokens and rescaled to sum to 1."""
    kept = torch.where(keep, log_probs, torch.full_like(log_probs, -math.inf))
    return kept - torch.logsumexp(kept, dim=0)


@dataclass
class Funnel:
    """Where the probability of the next token goes, in Hugging Face's order."""
    log_probs: torch.Tensor  # [vocab] after temperature
    kept_by_top_k: torch.Tensor  # [vocab] bool
    kept_by_top_p: torch.Tensor  # [vocab] bool (a subset of kept_by_top_k)
    final: torch.Tensor  # [vocab] log-probabilities that are sampled from

    def mass(self, keep: torch.Tensor) -> float:
        """Probability (under the temperature-scaled distribution) of a set of tokens."""
        return float(self.log_probs.exp()[keep].sum())


def funnel(logits: torch.Tensor, strategy: Strategy) -> Funnel:
    """Temperature, then top-k, then top-p (computed on the top-k survivors, renormalised)."""
    log_probs = log_softmax_with_temperature(logits, strategy.temperature)  # [vocab]
    by_k = top_k_keep(log_probs, strategy.top_k) & (log_probs > -math.inf)
    after_k = renormalise(log_probs, by_k)
    by_p = top_p_keep(after_k, strategy.top_p) & by_k
    return Funnel(log_probs, by_k, by_p, renormalise(log_probs, by_p))


def funnel_links(stage: Funnel, chosen: int, chosen_label: str) -> list[tuple[str, str, float]]:
    """The funnel as (from, to, probability mass) links: the whole vocabulary → kept by top-k →
    kept by top-p → the drawn token. What flows into each stage flows out of it; links that carry
    less than MASS_TOLERANCE are left out."""
    by_k, by_p = stage.mass(stage.kept_by_top_k), stage.mass(stage.kept_by_top_p)
    drawn = float(stage.log_probs[chosen].exp())
    links = [("whole vocabulary", "kept by top-k", by_k), ("whole vocabulary", "cut by top-k", 1.0 - by_k),
             ("kept by top-k", "kept by top-p", by_p), ("kept by top-k", "cut by top-p", by_k - by_p),
             ("kept by top-p", f"sampled: {chosen_label}", drawn), ("kept by top-p", "kept, not drawn", by_p - drawn)]
    return [link for link in links if link[2] > MASS_TOLERANCE]


def pick(final_log_probs: torch.Tensor, generator: torch.Generator | None, greedy: bool) -> int:
    if greedy:
        return int(final_log_probs.argmax())
    return int(torch.multinomial(final_log_probs.exp().float(), 1, generator=generator))


def sample_next(logits: torch.Tensor, strategy: Strategy, seed: int) -> int:
    """One reproducible draw: the same logits, strategy and seed give the same token."""
    generator = torch.Generator().manual_seed(seed)
    return pick(funnel(logits, strategy).final, generator, strategy.is_greedy)


def temperature_sweep(logits: torch.Tensor, token_ids: list[int], temperatures: list[float]):
    """Probabilities of `token_ids` and the entropy (bits) at each temperature.
    Returns ([len(token_ids), len(temperatures)] probabilities, [len(temperatures)] entropies)."""
    probs = torch.zeros(len(token_ids), len(temperatures), dtype=torch.float64)
    entropies = []
    for column, temperature in enumerate(temperatures):
        log_probs = log_softmax_with_temperature(logits, temperature)
        probs[:, column] = log_probs[token_ids].exp()
        entropies.append(entropy_bits(log_probs))
    return probs, entropies


def sweep_temperatures(low: float = 0.05, high: float = 5.0, count: int = 61) -> list[float]:
    """Temperatures evenly spaced on a log scale."""
    return torch.logspace(math.log10(low), math.log10(high), count, dtype=torch.float64).tolist()


# --- a word the student guesses -----------------------------------------------------------------
@dataclass
class Guess:
    token_ids: list[int]
    first_rank: int  # 1 = the model's top choice
    first_probability: float
    word_log_probability: float  # log P(the scored tokens of the guess, one after another)
    scored_tokens: int  # the guess's first tokens that are scored: all that fit the context after one prompt token
    prompt_tokens_left_out: int  # for the whole guess: the prompt's first tokens cut so that prompt + guess fit

    @property
    def word_probability(self) -> float:
        return math.exp(self.word_log_probability)


@torch.no_grad()
def guess_probability(model, prompt_ids: list[int], guess_ids: list[int]) -> Guess:
    """The guess's first token's rank and probability after the prompt (its last `context` tokens,
    as the trace reads it), and the probability of the whole guess, token by token (each conditioned
    on the prompt and the guess so far). Where prompt + guess are longer than the context, the whole
    guess reads the prompt's last tokens only, and a guess of `context` tokens or more is scored for
    its first `context - 1` (one prompt token must come before it)."""
    context = weights_of(model).arch.n_ctx
    scored = guess_ids[:context - 1]
    prompt_seen = prompt_ids[-context:]  # [≤ context] as the trace reads the prompt
    left_out = max(0, len(prompt_seen) + len(scored) - context)
    ids = prompt_seen[left_out:] + scored  # [≤ context]
    start = len(ids) - len(scored)  # index of the guess's first token in `ids` (at least 1)
    log_probs = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), dim=-1)  # [pos, vocab]
    steps = [float(log_probs[start - 1 + i, token]) for i, token in enumerate(scored)]
    first = (log_probs[start - 1] if not left_out else  # [vocab] the prompt's own next-token distribution
             torch.log_softmax(model(torch.tensor([prompt_seen])).logits[0, -1].double(), dim=-1))
    rank = int((first > first[guess_ids[0]]).sum()) + 1
    return Guess(guess_ids, rank, float(first[guess_ids[0]].exp()), sum(steps), len(scored), left_out)


# --- the generation loop ------------------------------------------------------------------------
@dataclass
class Step:
    candidates: list[int]  # the most likely tokens of the sampling distribution (greedy: of T = 1), best first
    candidate_probs: list[float]  # their probabilities in that distribution
    chosen: int
    chosen_prob: float  # its probability in the sampling distribution
    model_logprob: float  # log P(chosen) under the model's own distribution (T = 1, nothing cut)


@dataclass
class Generation:
    prompt_ids: list[int]
    strategy: Strategy
    seed: int
    steps: list[Step] = field(default_factory=list)
    dropped_prompt_tokens: int = 0

    @property
    def new_ids(self) -> list[int]:
        return [step.chosen for step in self.steps]

    @property
    def total_logprob(self) -> float:
        """log P(the whole continuation | prompt) under the model: the sum of the steps'."""
        return sum(step.model_logprob for step in self.steps)


@torch.no_grad()
def generate(model, prompt_ids: list[int], n_tokens: int, strategy: Strategy, seed: int, candidates: int = 8,
             on_step: Callable[[int], None] | None = None,
             forward: Callable[[torch.Tensor], torch.Tensor] | None = None) -> Generation:
    """Generate `n_tokens` one at a time, reusing the keys and values of earlier positions (the
    model's KV cache), so each step computes one new position. The prompt is cut from the left
    so that prompt + continuation fit the model's context. `forward`: logits of [1, pos] ids as
    [1, pos, vocab], for a model only its own forward runs (lesson 7's switched-off runs); each
    step then reads the whole context again (no cache)."""
    n_tokens = min(n_tokens, weights_of(model).arch.n_ctx - 1)  # at least one prompt token must fit
    room = weights_of(model).arch.n_ctx - n_tokens
    dropped = max(0, len(prompt_ids) - room)
    ids = prompt_ids[dropped:]
    result = Generation(prompt_ids=ids, strategy=strategy, seed=seed, dropped_prompt_tokens=dropped)
    generator = torch.Generator().manual_seed(seed)
    output = model(torch.tensor([ids]), use_cache=True) if forward is None else None
    for index in range(n_tokens):
        logits = output.logits[0, -1] if forward is None else forward(torch.tensor([ids]))[0, -1]  # [vocab]
        stage = funnel(logits, strategy)
        chosen = pick(stage.final, generator, strategy.is_greedy)
        model_log_probs = torch.log_softmax(logits.double(), dim=-1)  # [vocab] T = 1, nothing cut
        shown = model_log_probs if strategy.is_greedy else stage.final  # greedy: what the argmax chose among
        top = shown.topk(min(candidates, int((shown > -math.inf).sum())))
        model_logprob = float(model_log_probs[chosen])
        result.steps.append(Step(top.indices.tolist(), top.values.exp().tolist(), chosen,
                                 float(stage.final[chosen].exp()), model_logprob))
        if on_step is not None:
            on_step(index + 1)
        if forward is not None:
            ids = ids + [chosen]
        elif index + 1 < n_tokens:
            output = model(torch.tensor([[chosen]]), past_key_values=output.past_key_values, use_cache=True)
    return result


# --- the logit lens and the whole journey --------------------------------------------------------
@dataclass
class LogitLens:
    """What the model would predict if it stopped early, after the embeddings and after each block
    (the residual stream through the final LayerNorm and the unembedding). Rows: n_layer + 1."""
    top_probs: torch.Tensor  # [n_layer + 1, pos] probability of each cell's most likely token (the last pos asked for)
    top_ids: torch.Tensor  # [n_layer + 1, pos] that token
    last_position: torch.Tensor  # [n_layer + 1, vocab] the whole distribution at the last position


LENS_CELLS = 256  # (row, position) cells put through the unembedding at once: ~50 MB of logits for GPT-2


@torch.no_grad()
def logit_lens(trace: Trace, model, last_positions: int | None = None) -> LogitLens:
    """The logit lens: each row puts the stream through what the model's own output does, the final
    norm (where the family has one) and the unembedding; its last row is the model's own output.
    Rows go through together, LENS_CELLS cells at a time (one large product is faster than one per
    row; the full [rows, pos, vocab] array of a GPT-2 would take hundreds of MB), and a cell's top
    probability is exp(top logit − logsumexp), without the softmax of the whole vocabulary.
    `last_positions`: the lens of the last positions only (what a figure draws)."""
    weights = weights_of(model)
    streams = torch.stack([trace["blocks.0.resid_pre"]]
                          + [trace["resid_post", l] for l in range(trace.n_layer)])  # [rows, pos, d_model]
    streams = streams[:, -(last_positions or trace.n_tokens):]  # [rows, shown positions, d_model]
    if weights.arch.final_norm:
        streams = norm(streams, weights.ln_final, weights.arch, {}, "lens")  # [rows, shown positions, d_model]
    rows_at_once = max(1, LENS_CELLS // streams.shape[1])
    top_probs, top_ids, last = [], [], []
    for start in range(0, streams.shape[0], rows_at_once):
        logits = streams[start:start + rows_at_once] @ weights.W_U + weights.b_U  # [rows_at_once, pos, vocab]
        best = logits.max(dim=-1)  # [rows_at_once, pos]
        top_probs.append(torch.exp(best.values - logits.logsumexp(dim=-1)))
        top_ids.append(best.indices)
        last.append(torch.softmax(logits[:, -1], dim=-1))  # [rows_at_once, vocab]
    return LogitLens(torch.cat(top_probs), torch.cat(top_ids), torch.cat(last))


def lens_row_names(n_layer: int) -> list[str]:
    return ["embeddings"] + [f"after block {l}" for l in range(n_layer)]


@dataclass
class JourneyFlow:
    source: str  # a prompt position ("3 ␣Mia") or "biases"
    component: str  # "embeddings", "attention 2", "MLP 1", "final LayerNorm β"
    value: float  # its direct contribution to the chosen token's logit (σ of ln_final held fixed)


@torch.no_grad()
def journey_flows(trace: Trace, model, token_id: int, labels: list[str]) -> list[JourneyFlow]:
    """The chosen token's logit at the last position, split exactly into flows by the position
    whose vector was written (a prompt position, or a bias) and the component that wrote it.

    Attention's output at the last position is Σ_heads Σ_sources weight · (v_source · W_O,head)
    plus b_O, so its direct contribution splits exactly over source positions. The embeddings
    and the MLPs work on the last position's own vector, so they flow from the last token. Each
    part goes through `core.residual.direct_logit` (the final norm's divisor held at its real
    value; in a post-LN model through the later norms too, `core.residual.carried`); the flows
    sum to the real logit."""
    from core.residual import carried, logit_constants

    weights = weights_of(model)

    def to_logit(vectors: torch.Tensor, first_norm: int) -> torch.Tensor:  # [..., d_model] -> [...]
        return direct_logit(carried(vectors, trace, model, first_norm, position=-1), trace, model, token_id)

    last = labels[-1]
    flows = [JourneyFlow(last, "embeddings", float(to_logit(trace["blocks.0.resid_pre"][-1], 0)))]
    arch = weights.arch
    for layer, block in enumerate(weights.blocks):
        values = trace["v", layer]  # [kv_head, pos, d_head]
        if arch.group_size > 1:
            values = values.repeat_interleave(arch.group_size, dim=0)  # [head, pos, d_head]
        written = torch.einsum("hpd,hdm->hpm", values, block.W_O)  # [head, pos, d_model] each source's value, projected
        weights_from_last = trace["pattern", layer][:, -1, :]  # [head, pos] attention of the last position
        per_source = (weights_from_last.unsqueeze(-1) * written).sum(dim=0)  # [pos, d_model]
        for position, value in enumerate(to_logit(per_source, 2 * layer).tolist()):
            flows.append(JourneyFlow(labels[position], f"attention {layer}", value))
        flows.append(JourneyFlow("biases", f"attention {layer}", float(to_logit(block.b_O, 2 * layer))))
        if arch.post_norm:
            flows.append(JourneyFlow("biases", f"norm β {layer}.1", float(to_logit(block.ln1.bias, 2 * layer + 1))))
        flows.append(JourneyFlow(last, f"MLP {layer}", float(to_logit(trace["mlp_out", layer][-1], 2 * layer + 1))))
        if arch.post_norm:
            flows.append(JourneyFlow("biases", f"norm β {layer}.2", float(to_logit(block.ln2.bias, 2 * layer + 2))))
    flows += [JourneyFlow("biases", name, value) for name, value in logit_constants(model, token_id)]
    return flows


def merge_small_sources(flows: list[JourneyFlow], labels: list[str], last_positions: int,
                        small_share: float) -> list[JourneyFlow]:
    """The journey made drawable: flows from a prompt position before the last `last_positions`,
    or from a position whose flows carry less than `small_share` of all |flow|, are given the
    source "other positions". Nothing is dropped, so the flows still sum to the logit."""
    weight: dict[str, float] = {}
    for flow in flows:
        weight[flow.source] = weight.get(flow.source, 0.0) + abs(flow.value)
    total = sum(weight.values()) or 1.0
    early = set(labels[:max(0, len(labels) - last_positions)])
    kept = {source for source, w in weight.items() if w >= small_share * total and source not in early}
    kept.add("biases")
    return [flow if flow.source in kept else JourneyFlow("other positions", flow.component, flow.value)
            for flow in flows]


def raises_and_lowers(flows: list[JourneyFlow]) -> tuple[float, float]:
    """How much the flows push the logit up, and how much down (both ≥ 0); up − down is the logit."""
    return sum(f.value for f in flows if f.value > 0), -sum(f.value for f in flows if f.value < 0)
