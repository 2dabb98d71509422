"""Lesson 6: From logits to text. Layout and widgets; the math is in core.sampling, the figures
in core.figures, the side-by-side generation in generation_views."""
import math

import pandas as pd
import streamlit as st
import torch

import course_ui
import generation_views
from core import figures, sampling
from core.cached import cached_logit_lens, cached_temperature_sweep
from core.sampling import Strategy
from core.tokenization import prompt_tokens, tokens_text

CANDIDATES = 10  # rows of the candidates table
SWEEP_CANDIDATES = 6  # lines in the temperature sweep
CUT_CANDIDATES = 30  # bars in the top-p figure
JOURNEY_POSITIONS = 12  # the journey draws at most the last positions separately; earlier ones are merged
SMALL_SOURCE = 0.01  # and so are positions whose flows carry less than this share of the total
LENS_POSITIONS = 24  # the logit lens draws the last positions

lesson, loaded = course_ui.lesson_page(6)
course_ui.keep_values("s_temperature", "s_top_k", "s_top_p", "s_seed", "s_n_tokens", "s_guess")
prompt = course_ui.prompt_box()
trace = course_ui.lesson_trace(loaded, prompt)
needs_trace = course_ui.needs_trace(trace)
state = st.session_state
state.setdefault("s_temperature", 1.0)
state.setdefault("s_top_k", 50)
state.setdefault("s_top_p", 0.9)
state.setdefault("s_seed", 0)
state.setdefault("s_n_tokens", 30)
if trace is not None:
    logits = trace["logits"][-1]  # [vocab]
    state.s_top_k = min(int(state.s_top_k), logits.numel())  # a smaller model may have a smaller vocabulary
    log_probs = torch.log_softmax(logits.double(), dim=-1)  # [vocab] the model's own distribution (T = 1)


def read_strategy() -> None:
    """The sampling settings as the controls now say (again at each rerun of the sampling stretch)."""
    global strategy, stage
    if trace is not None:
        strategy = Strategy(float(state.s_temperature), int(state.s_top_k), float(state.s_top_p))
        stage = sampling.funnel(logits, strategy)


read_strategy()


def name(token_id: int) -> str:
    """A token's text with whitespace made visible (for tables and markdown-free widgets)."""
    return figures.token_name(loaded.tokenizer, token_id)


def plotly_name(token_id: int) -> str:
    return figures.plotly_text(tokens_text(loaded.tokenizer, [token_id]))


@needs_trace
def candidates() -> None:
    top = log_probs.topk(CANDIDATES)
    st.dataframe(pd.DataFrame([{"rank": rank + 1, "token": name(i), "id": i, "logit": round(float(logits[i]), 3),
                                "probability": round(math.exp(lp), 4)}
                               for rank, (i, lp) in enumerate(zip(top.indices.tolist(), top.values.tolist()))]),
                 hide_index=True)
    st.caption(f"The softmax turns {logits.numel():,} logits into probabilities that sum to 1; "
               f"these {CANDIDATES} hold {float(top.values.exp().sum()):.1%} of it.")


def probability_text(probability: float, log_probability: float | None = None) -> str:
    """A probability as the guess's figures show it: 4 decimals, small ones in e-notation, and its log
    (when given) where even that would read 0."""
    if log_probability is not None and probability < 1e-300:
        return f"log P = {log_probability:.1f}"
    return f"{probability:.2e}" if probability < 1e-3 else f"{probability:.4f}"


@needs_trace
def guess() -> None:
    text = st.text_input("Your guess for the next word", key="s_guess", max_chars=60)
    if not text.strip():
        st.caption("Type a word to see where the model ranks it.")
        return
    if not prompt[-1:].isspace() and not text[:1].isspace():
        text = " " + text  # words after a word start with a space, and GPT-2's tokens carry it
    tokens = prompt_tokens(loaded.tokenizer, text)
    result = sampling.guess_probability(loaded.model, trace.token_ids, [t.id for t in tokens])
    spelled = " + ".join(f"`{figures.visible(t.text)}`" for t in tokens)
    st.markdown(f"{figures.md_escape(figures.visible(text))} is {len(tokens)} token(s) for this model: "
                f"{figures.md_escape(spelled)}.")
    columns = st.columns(3)
    columns[0].metric("Rank of its first token", f"{result.first_rank:,} of {logits.numel():,}")
    columns[1].metric("P(first token)", probability_text(result.first_probability))
    columns[2].metric("P(whole word)", probability_text(result.word_probability, result.word_log_probability))
    cuts = ([f"only its first {result.scored_tokens} tokens are scored (a prompt token must come before them)"]
            if result.scored_tokens < len(tokens) else []) + (
        [f"it is read after the prompt without its first {result.prompt_tokens_left_out} tokens"]
        if result.prompt_tokens_left_out else [])
    if cuts:
        st.caption(f"Prompt and guess together are longer than the model's context of {loaded.context_length} tokens, "
                   f"so for the whole word {' and '.join(cuts)}. The first token's rank and probability read the "
                   "whole prompt, as above.")


@needs_trace
def temperature() -> None:
    st.slider("Temperature T", 0.0, 5.0, step=0.05, key="s_temperature",
              help="0 means greedy: always the most likely token.")
    shown = log_probs.topk(15).indices.tolist()
    at_t = stage.log_probs.exp()
    series = {"T = 1": [float(log_probs[i].exp()) for i in shown]}
    if strategy.temperature != 1.0:  # at T = 1 the two distributions are one
        series[f"T = {strategy.temperature:g}"] = [float(at_t[i]) for i in shown]
    course_ui.chart("temperature-bars", (strategy.temperature,), lambda: figures.grouped_bars(
        [plotly_name(i) for i in shown], series, "The 15 most likely tokens at T = 1 and at your temperature"
        if len(series) > 1 else "The 15 most likely tokens at T = 1 (your temperature)", "candidate next token"))
    left, right = st.columns(2)
    left.metric("Entropy at T = 1", f"{sampling.entropy_bits(log_probs):.3f} bits")
    if strategy.temperature != 1.0:  # at T = 1 the two are one (as in the chart)
        right.metric(f"Entropy at T = {strategy.temperature:g}", f"{sampling.entropy_bits(stage.log_probs):.3f} bits")


@needs_trace
def sweep() -> None:
    temperatures, shown, probs, entropies = cached_temperature_sweep(loaded.name, prompt, SWEEP_CANDIDATES)
    names = [f"{rank + 1}. {plotly_name(i)}" for rank, i in enumerate(shown)]
    course_ui.chart("sweep-lines", (strategy.temperature,), lambda: figures.sweep_lines(
        temperatures, {n: probs[row].tolist() for row, n in enumerate(names)},
        "Probability of the top candidates across temperatures", "probability", marker=strategy.temperature))
    course_ui.chart("sweep-entropy", (strategy.temperature,), lambda: figures.sweep_lines(
        temperatures, {"entropy": entropies}, "Entropy of the whole distribution across temperatures", "bits",
        marker=strategy.temperature, reference=(f"uniform over {logits.numel():,} tokens: "
                                                f"{math.log2(logits.numel()):.2f} bits", math.log2(logits.numel()))))
    columns = [f"{t:.2g}" for t in temperatures[::4]]
    course_ui.chart("sweep-heatmap", (), lambda: figures.heatmap(
        probs[:, ::4], columns, names, "Candidates × temperature (probability)", "temperature", "candidate",
        diverging=False, value_range=(0, 1), colour_title="probability"))


@needs_trace
def cuts() -> None:
    left, right = st.columns(2)
    left.number_input("top-k (0 = off)", 0, logits.numel(), step=1, key="s_top_k")
    right.slider("top-p (1 = off)", 0.05, 1.0, step=0.01, key="s_top_p")
    st.caption(f"Order, as in Hugging Face `generate`: temperature (T = {strategy.temperature:g}), then top-k, "
               "then top-p on what top-k kept, renormalised.")
    after_k = sampling.renormalise(stage.log_probs, stage.kept_by_top_k)  # [vocab]
    ranked = after_k.topk(min(CUT_CANDIDATES, logits.numel()))
    ids = ranked.indices.tolist()
    course_ui.chart("cumulative", (strategy,), lambda: figures.cumulative_figure(
        [f"{r + 1}. {plotly_name(i)}" for r, i in enumerate(ids)], ranked.values.exp().tolist(),
        [bool(stage.kept_by_top_p[i]) for i in ids], strategy.top_p,
        f"After temperature and top-k: the {len(ids)} most likely tokens and the running total"))
    kept = int(stage.kept_by_top_p.sum())
    st.markdown(f"**{kept:,}** token(s) survive (top-k kept {int(stage.kept_by_top_k.sum()):,}). "
                "Their probabilities, renormalised to sum to 1:")
    final = stage.final.topk(min(kept, 15))
    st.dataframe(pd.DataFrame([{"token": name(i), "before the cuts": round(float(stage.log_probs[i].exp()), 4),
                                "after the cuts": round(math.exp(v), 4)}
                               for i, v in zip(final.indices.tolist(), final.values.tolist())]), hide_index=True)


@needs_trace
def funnel() -> None:
    st.number_input("Seed", 0, 2**31 - 1, step=1, key="s_seed", help="The same seed gives the same draw.")
    chosen = sampling.sample_next(logits, strategy, int(state.s_seed))
    course_ui.chart("funnel", (strategy, chosen), lambda: figures.funnel_sankey(
        sampling.funnel_links(stage, chosen, plotly_name(chosen)),
        f"Where the probability goes at T = {strategy.temperature:g} (masses of the temperature-scaled distribution)"))
    how = "greedy: the most likely token" if strategy.is_greedy else f"seed {int(state.s_seed)}"
    st.markdown(f"Drawn ({how}): **{figures.md_escape(name(chosen))}**, which had probability "
                f"{float(stage.final[chosen].exp()):.4f} after the cuts.")


@needs_trace
def generate() -> None:
    generation_views.side_by_side(loaded, trace, strategy, plotly_name)


@needs_trace
def journey() -> None:
    top = log_probs.topk(5).indices.tolist()
    token_id = st.selectbox("Follow the logit of", top, key="s_journey_token",
                            format_func=lambda i: f"{name(i)} (p = {float(log_probs[i].exp()):.3f})")
    labels = figures.token_labels(trace.token_strings)
    flows = sampling.journey_flows(trace, loaded.model, token_id, labels)
    merged = sampling.merge_small_sources(flows, labels, JOURNEY_POSITIONS, SMALL_SOURCE)
    up, down = sampling.raises_and_lowers(merged)
    course_ui.chart("journey", (token_id,), lambda: figures.journey_sankey(
        [(f.source, f.component, f.value) for f in merged], (f"raises the logit (+{up:.2f})", f"lowers it (−{down:.2f})"),
        f"Where the logit of {plotly_name(token_id)} at the last position comes from"))
    st.caption(f"Raises − lowers = {up - down:.4f}; the model's logit for this token: "
               f"{float(logits[token_id]):.4f}.")


@needs_trace
def logit_lens() -> None:
    lens = cached_logit_lens(loaded.name, prompt, LENS_POSITIONS)  # the last positions only: what is drawn
    rows = sampling.lens_row_names(trace.n_layer)
    columns = figures.token_labels(trace.token_strings)[-lens.top_probs.shape[1]:]
    course_ui.chart("lens", (), lambda: figures.text_heatmap(
        lens.top_probs.tolist(), [[plotly_name(i) for i in row] for row in lens.top_ids.tolist()],
        columns, rows, "Logit lens: the top prediction if the model stopped after each block",
        "position (predicting the next token)", "stopped after"))
    followed = list(dict.fromkeys(log_probs.topk(5).indices.tolist() + lens.top_ids[:, -1].tolist()))
    token_id = st.selectbox("Follow a token up the layers (last position)", followed, key="s_lens_token",
                            format_func=name)
    course_ui.chart("lens-follow", (token_id,), lambda: figures.line(
        rows, lens.last_position[:, token_id].tolist(), f"Probability of {plotly_name(token_id)} at the last "
                                                        "position, layer by layer", "probability"))


def recap() -> None:
    course_ui.lesson_links([1, 2, 3, 4, 5])


course_ui.render_lesson(lesson, {
    "candidates": candidates, "guess": guess, "temperature": temperature, "sweep": sweep, "cuts": cuts,
    "funnel": funnel, "generate": generate, "journey": journey, "logit-lens": logit_lens, "recap": recap,
}, key=course_ui.lesson_key(6), live=(
    course_ui.LiveStretch("guess"), course_ui.LiveStretch("temperature", "generate", read_strategy),
    course_ui.LiveStretch("journey"), course_ui.LiveStretch("logit-lens")))
course_ui.lesson_navigation(6)
