"""The Attention lesson's math, all read from a `Trace` (nothing here runs the model again,
except `ablation_effect`, which asks for a second trace with heads ablated)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from core.glassbox import Trace


@dataclass(frozen=True)
class QueryRowStep:
    """One key of a worked query row, every number a student can check with a calculator."""
    key: int
    key_token: str
    dot: float  # q · k
    scaled: float  # q · k / √d_head (by the trace's own scale)
    masked: bool  # the key comes after the query
    exp: float  # exp(scaled - max over the row), 0 where masked
    weight: float  # exp / sum of exp: the attention weight


def worked_query_row(trace: Trace, layer: int, head: int, query: int) -> list[QueryRowStep]:
    """Attention of one query position over every key, step by step from Q and K."""
    q_all, k = trace.scored_qk(layer, head)  # [pos, d_head] each
    q = q_all[query]  # [d_head]
    scale = float(trace["attn_scale", layer])
    dots = [float(q @ k[j]) for j in range(trace.n_tokens)]
    scaled = [d / scale for d in dots]
    visible = scaled[:query + 1]
    peak = max(visible)
    exps = [math.exp(s - peak) if j <= query else 0.0 for j, s in enumerate(scaled)]
    total = sum(exps)
    return [QueryRowStep(j, trace.token_strings[j], dots[j], scaled[j], j > query, exps[j], exps[j] / total)
            for j in range(trace.n_tokens)]


def earlier_copies(token_ids: list[int]) -> list[list[int]]:
    """For each position, the earlier positions holding the same token (empty: its first occurrence)."""
    return [[j for j in range(q) if token_ids[j] == token_ids[q]] for q in range(len(token_ids))]


def head_scores(trace: Trace) -> dict[str, torch.Tensor]:
    """Per-head scores on this prompt, each [layer, head], mean over the queries it applies to.

    previous-token: weight on the key just before the query (queries 1..pos-1)
    first-token:    weight on key 0 (queries 1..pos-1)
    same-token:     weight on earlier positions holding the query's own token
                    (queries whose token appeared before; 0 if there are none)
    induction:      weight on the positions just after an earlier copy of the query's token,
                    where a repeated text goes on (the same queries; 0 if there are none)
    """
    n = trace.n_tokens
    earlier_same = earlier_copies(trace.token_ids)
    repeat_queries = [q for q in range(n) if earlier_same[q]]
    after_copy = {q: [j + 1 for j in earlier_same[q]] for q in repeat_queries}  # j + 1 <= q: always a key
    scores = {name: torch.zeros(trace.n_layer, trace.n_head)
              for name in ("previous-token", "first-token", "same-token", "induction")}
    for layer in range(trace.n_layer):
        pattern = trace["pattern", layer]  # [head, query, key]
        if n > 1:
            queries = torch.arange(1, n)
            scores["previous-token"][layer] = pattern[:, queries, queries - 1].mean(dim=-1)
            scores["first-token"][layer] = pattern[:, 1:, 0].mean(dim=-1)
        if repeat_queries:
            per_query = torch.stack([pattern[:, q, earlier_same[q]].sum(dim=-1) for q in repeat_queries])
            scores["same-token"][layer] = per_query.mean(dim=0)  # [head]
            per_query = torch.stack([pattern[:, q, after_copy[q]].sum(dim=-1) for q in repeat_queries])
            scores["induction"][layer] = per_query.mean(dim=0)  # [head]
    return scores


def role_queries(trace: Trace) -> dict[str, int]:
    """How many queries of this prompt each role of `head_scores` is measured on (0: the role cannot
    show on this prompt, and its scores are 0 for every head)."""
    repeats = sum(1 for copies in earlier_copies(trace.token_ids) if copies)  # queries whose token came before
    return {"previous-token": trace.n_tokens - 1, "first-token": trace.n_tokens - 1,
            "same-token": repeats, "induction": repeats}


def strongest_head(scores: torch.Tensor) -> tuple[int, int, float]:
    """(layer, head, score) of the highest score in a [layer, head] table."""
    flat = int(scores.argmax())
    layer, head = divmod(flat, scores.shape[1])
    return layer, head, float(scores[layer, head])


def attention_links(trace: Trace, layer: int, head: int, min_weight: float = 0.02,
                    last_tokens: int = 24) -> list[tuple[int, int, float]]:
    """(source key, destination query, weight) for the head's attention among the last tokens,
    dropping weights below `min_weight` so the picture stays readable."""
    pattern = trace["pattern", layer][head]  # [query, key]
    first = max(0, trace.n_tokens - last_tokens)
    return [(key, query, float(pattern[query, key]))
            for query in range(first, trace.n_tokens) for key in range(first, query + 1)
            if float(pattern[query, key]) >= min_weight]


@dataclass(frozen=True)
class PredictionChange:
    token_ids: list[int]  # the top candidates before the intervention, then any new ones after
    before: list[float]  # probability of each, before
    after: list[float]  # and after
    chosen_id: int
    logprob_before: float
    logprob_after: float


def prediction_change(before: Trace, after: Trace, top: int = 10, chosen_id: int | None = None) -> PredictionChange:
    """How the next-token distribution at the last position moves between two traces."""
    p_before = before.next_token_probs()  # [vocab]
    p_after = after.next_token_probs()  # [vocab]
    ids = p_before.topk(top).indices.tolist()
    ids += [i for i in p_after.topk(top).indices.tolist() if i not in ids]
    chosen = ids[0] if chosen_id is None else chosen_id
    return PredictionChange(ids, [float(p_before[i]) for i in ids], [float(p_after[i]) for i in ids], chosen,
                            float(torch.log(p_before[chosen])), float(torch.log(p_after[chosen])))


# --- grouped-query attention and the key/value cache ------------------------------------------------
def kv_cache_bytes_per_token(layers: int, kv_heads: int, d_head: int, bytes_per_number: int) -> int:
    """What generating remembers for every token of the context: a key and a value vector of
    d_head numbers, for each key/value head of each layer."""
    return 2 * layers * kv_heads * d_head * bytes_per_number


@dataclass(frozen=True)
class CacheRow:
    model: str
    family: str
    layers: int
    heads: int
    kv_heads: int
    d_head: int
    bytes_per_token: int  # in 16-bit numbers, as models are usually served
    context: int

    @property
    def full_context_bytes(self) -> int:
        return self.bytes_per_token * self.context


def kv_cache_rows(models: list[dict], bytes_per_number: int = 2) -> list[CacheRow]:
    """The key/value cache per token of each model, from its config's sizes (rows of
    `core.models.reference_models()` or `core.models.config_summary`-like dicts)."""
    return [CacheRow(m["name"], m["family"], m["layers"], m["heads"], m["kv_heads"], m["d_head"],
                     kv_cache_bytes_per_token(m["layers"], m["kv_heads"], m["d_head"], bytes_per_number), m["context"])
            for m in models]
