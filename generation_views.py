"""Lesson 6's generation: the student's settings side by side with greedy and a hotter temperature,
from one prompt and one seed, and each step's candidates. Layout and widgets only; generating is
core.sampling.generate."""
import math
from collections.abc import Callable

import streamlit as st

import course_ui
from core import figures, sampling
from core.sampling import Strategy
from core.tokenization import tokens_text

HOTTER_BY = 1.0  # the third column: the student's temperature plus this (at least 1.5)


def strategy_label(choice: Strategy) -> str:
    if choice.is_greedy:
        return "greedy"
    return f"T = {choice.temperature:g}, top-k = {choice.top_k or 'off'}, top-p = {choice.top_p:g}"


def side_by_side(loaded, trace, strategy: Strategy, plotly_name: Callable[[int], str]) -> None:
    """Generate from the student's prompt at their settings, beside greedy and a hotter setting
    (same prompt and seed: core.sampling.generate), with each step's candidates; kept in the
    session (`s_generated`) while the page reruns, and marked when the settings have changed since."""
    state = st.session_state
    st.slider("Tokens to generate", 1, 50, key="s_n_tokens")
    hotter = max(1.5, strategy.temperature + HOTTER_BY)  # always hotter than the student's own column
    compared = (Strategy(0.0, 0, 1.0), strategy, Strategy(hotter, strategy.top_k, strategy.top_p))
    request = (loaded.name, tuple(trace.token_ids), int(state.s_n_tokens), compared, int(state.s_seed))
    if st.button("Generate", type="primary", key="s_generate"):
        bar = st.progress(0.0, text="Generating…")
        total = request[2] * len(compared)
        results = []
        for index, choice in enumerate(compared):
            def report(done: int, index=index) -> None:
                bar.progress((index * request[2] + done) / total, text=f"Generating… token {done} of {request[2]}")
            results.append(sampling.generate(loaded.model, list(request[1]), request[2], choice, request[4],
                                             on_step=report))
        bar.empty()
        state.s_generated = (request, results)  # this session's, kept while the page reruns
    if state.get("s_generated", ((None,),))[0][:2] != request[:2]:
        st.caption("Press Generate to continue your prompt.")
        return
    (model_key, prompt_ids, n_tokens, shown, seed), results = state.s_generated
    if state.s_generated[0] != request:
        st.caption("The settings changed since this was generated; press Generate again to use them.")
    main = results[1]
    left_out = trace.dropped_tokens + main.dropped_prompt_tokens  # the trace's own cut, then generation's
    if main.dropped_prompt_tokens:
        st.caption(f"The first {left_out} of your prompt's {trace.dropped_tokens + trace.n_tokens} tokens were left "
                   f"out so that prompt and continuation fit the model's context of {loaded.context_length} tokens.")
    st.markdown(f"**Your settings** ({strategy_label(shown[1])}, seed {seed}):")
    st.code(("…" if len(main.prompt_ids) > 40 else "") + tokens_text(loaded.tokenizer, main.prompt_ids[-40:])
            + "▕" + tokens_text(loaded.tokenizer, main.new_ids),
            language=None, wrap_lines=True)
    st.caption(f"log P(continuation | prompt) = {main.total_logprob:.2f}, i.e. a probability of "
               f"{math.exp(main.total_logprob):.2e}. The bar ▕ marks where the prompt ends.")
    rows = [f"{k + 1} {plotly_name(step.chosen)}" for k, step in enumerate(main.steps)]
    width = max(len(step.candidates) for step in main.steps)
    values = [[step.candidate_probs[c] if c < len(step.candidates) else 0.0 for c in range(width)]
              for step in main.steps]
    texts = [[("▸ " if step.candidates[c] == step.chosen else "") + plotly_name(step.candidates[c])
              if c < len(step.candidates) else "" for c in range(width)] for step in main.steps]
    course_ui.chart("steps", state.s_generated[0], lambda: figures.text_heatmap(
        values, texts, [str(c + 1) for c in range(width)], rows, "Each step's candidates (▸ = the token drawn)",
        "rank", "step"))
    st.markdown("**Side by side**, same prompt and seed:")
    for column, choice, result in zip(st.columns(len(shown)), shown, results):
        column.markdown(f"**{figures.md_escape(strategy_label(choice))}**")
        column.code(tokens_text(loaded.tokenizer, result.new_ids), language=None, wrap_lines=True)
        column.caption(f"log P = {result.total_logprob:.2f}")
