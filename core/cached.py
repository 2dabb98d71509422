"""The Streamlit caches: the only module of `core` that imports Streamlit.

One model object per process and one trace per (model, prompt, interventions), both
`st.cache_resource`: shared by every session and never mutated (a test renders every page
and checks the shared trace is bit-for-bit unchanged).

Why not `st.cache_data` for traces: it hands every rerun an unpickled copy. For GPT-2 small
at 128 tokens that is 145 MB copied on every click, 0.35-0.45 s of a 0.6 s rerun on this
machine, and one extra transient copy per student rerunning at the same moment, which a
class on one Cloud app (2.7 GB at most) cannot afford.
"""
from __future__ import annotations

import streamlit as st

from core.glassbox import Interventions, Trace, run_trace
from core.models import REGISTRY, SMALL_MODEL_PARAMETERS, LoadedModel, load_model
from core.tokenization import bpe_merges, gpt2_tokenizer, prompt_tokens

MAX_TRACE_TOKENS = 128  # the glass box shows at most this many tokens (the last ones)


BUNDLED_KEYS = frozenset(choice.key for choice in REGISTRY if not choice.from_hub)  # the course's own small models


def cached_model(key: str) -> LoadedModel:
    """Raises `ModelLoadError` (not cached, so a later try can succeed). The bundled course models
    (a few MB each) are kept for good, apart from the cap of two on the others: a page that names
    the course models beside a large one (the map's size table names all three) evicted and
    reloaded the large one at every run, ~1.2 s for GPT-2 small."""
    return _cached_bundled_model(key) if key in BUNDLED_KEYS else _cached_large_model(key)


@st.cache_resource(show_spinner="Loading the model…")
def _cached_bundled_model(key: str) -> LoadedModel:
    return load_model(key)


@st.cache_resource(max_entries=2, show_spinner="Loading the model…")
def _cached_large_model(key: str) -> LoadedModel:
    return load_model(key)


@st.cache_resource(show_spinner=False)
def cached_gpt2_tokenizer():
    return gpt2_tokenizer()


@st.cache_resource(show_spinner=False)
def cached_bpe_merges(name: str, _tokenizer) -> list[tuple[str, str]]:
    """The merge list of the tokenizer called `name` (read once; GPT-2's has 50,000 merges)."""
    return bpe_merges(_tokenizer)


def cached_trace(model_key: str, prompt: str, ablated_heads: frozenset = frozenset(),
                 ablated_neurons: frozenset = frozenset(), use_positions: bool = True) -> Trace:
    """The trace of `prompt`, computed once per (model, prompt, interventions). Raises ValueError
    for a prompt with no tokens. A trace at 128 tokens holds 8 MB for the course model, 145 MB
    for GPT-2 small and 343 MB for gpt2-medium, so bigger models keep fewer traces: a class on
    one Cloud app (2.7 GB at most) must not run out of memory."""
    model = cached_model(model_key).model
    size = sum(p.numel() for p in model.parameters())
    cache = _small_model_trace if size <= SMALL_MODEL_PARAMETERS else _gpt2_size_trace if size <= 200_000_000 \
        else _large_model_trace
    return cache(model_key, prompt, ablated_heads, ablated_neurons, use_positions)


def _trace(model_key: str, prompt: str, ablated_heads: frozenset, ablated_neurons: frozenset,
           use_positions: bool) -> Trace:
    loaded = cached_model(model_key)
    tokens = prompt_tokens(loaded.tokenizer, prompt)
    interventions = Interventions(frozenset(ablated_heads), frozenset(ablated_neurons), use_positions)
    # an ablated run starts at its first ablated block, from the clean run the page computed already
    clean = cached_trace(model_key, prompt, use_positions=use_positions) if ablated_heads or ablated_neurons else None
    return run_trace(loaded.model, [t.id for t in tokens], [t.text for t in tokens],
                     interventions=interventions, max_tokens=MAX_TRACE_TOKENS, resume_from=clean)


@st.cache_resource(max_entries=32, show_spinner=False)
def _small_model_trace(*key) -> Trace:  # the course model
    return _trace(*key)


@st.cache_resource(max_entries=6, show_spinner=False)
def _gpt2_size_trace(*key) -> Trace:
    return _trace(*key)


@st.cache_resource(max_entries=2, show_spinner=False)
def _large_model_trace(*key) -> Trace:
    return _trace(*key)


@st.cache_data(max_entries=32, show_spinner=False)
def cached_reorder_experiment(model_key: str, token_ids: tuple[int, ...], order: tuple[int, ...]):
    from core.positions import reorder_experiment

    return reorder_experiment(cached_model(model_key).model, list(token_ids), list(order))


@st.cache_data(max_entries=32, show_spinner=False)
def cached_shift_change(model_key: str, token_ids: tuple[int, ...], shift: int) -> float:
    from core.positions import shift_invariance

    return shift_invariance(cached_model(model_key).model, list(token_ids), shift)


@st.cache_resource(max_entries=300, show_spinner=False)
def cached_figure(key: tuple, _build):
    """A Plotly figure built once per key and shared read-only (finished: `plot_style.finished`).
    The key must hold everything the figure depends on: model, prompt, and the page's choices."""
    return _build()


@st.cache_resource(max_entries=8, show_spinner="Preparing the text and training its tokenizer…")
def cached_training_data(source: str, text: str, vocab_size: int):
    """Lesson 7's data: 'stories', 'copy' or 'text' (the student's own `text`), tokenized with a
    byte-level BPE of `vocab_size`. Shared read-only: a run never changes the id tensors."""
    from core.live_training import training_data

    return training_data(source, text, vocab_size)


@st.cache_data(max_entries=32, show_spinner="Timing a few training steps…")
def cached_step_seconds(config, vocab_size: int) -> float:
    from core.live_training import measure_step_seconds

    return measure_step_seconds(config, vocab_size)


@st.cache_data(max_entries=16, show_spinner=False)
def cached_frozen_step(model_key: str, token_ids: tuple[int, ...], learning_rate: float):
    from core.backprop_step import frozen_step

    return frozen_step(cached_model(model_key).model, list(token_ids), learning_rate)


@st.cache_data(max_entries=16, show_spinner=False)
def cached_logit_lens(model_key: str, prompt: str, last_positions: int):
    from core.sampling import logit_lens

    return logit_lens(cached_trace(model_key, prompt), cached_model(model_key).model, last_positions)


@st.cache_data(max_entries=16, show_spinner=False)
def cached_temperature_sweep(model_key: str, prompt: str, candidates: int):
    """Lesson 6's sweep of the next-token distribution: (temperatures, the top candidates' ids,
    their probabilities [candidates, temperatures], the entropy at each temperature)."""
    from core import sampling

    logits = cached_trace(model_key, prompt)["logits"][-1]  # [vocab]
    temperatures = sampling.sweep_temperatures()
    shown = logits.topk(candidates).indices.tolist()
    probs, entropies = sampling.temperature_sweep(logits, shown, temperatures)
    return temperatures, shown, probs, entropies


@st.cache_data(max_entries=256, show_spinner=False)
def cached_nearest_neighbours(model_key: str, token_id: int) -> list[tuple[int, float]]:
    """Lesson 2: the 10 tokens whose embeddings are closest (cosine) to `token_id`'s, from the whole vocabulary."""
    from core.embeddings import embedding_matrix, nearest_neighbours

    return nearest_neighbours(embedding_matrix(cached_model(model_key).model), token_id)


@st.cache_data(max_entries=32, show_spinner=False)
def cached_neurons_pushing_token(model_key: str, prompt: str, token_id: int, per_layer: int) -> list[tuple[int, int]]:
    """Lesson 5's ablation choices: per layer, the neurons that push `token_id` up most directly."""
    from core.residual import neurons_pushing_token

    return neurons_pushing_token(cached_trace(model_key, prompt), cached_model(model_key).model, token_id, per_layer)


@st.cache_resource(max_entries=4, show_spinner="Finding the model's induction circuit (the standard test: 10 repeated runs)…")
def cached_induction_circuit(model_key: str):
    """The model's induction circuit, found once per model by the standard test (`core.induction`);
    None for a one-layer model."""
    from core.induction import find_circuit, standard_test

    loaded = cached_model(model_key)
    return find_circuit(standard_test(loaded.model, loaded.tokenizer, loaded.seen_token_ids))
