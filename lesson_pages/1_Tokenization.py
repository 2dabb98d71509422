"""Lesson 1: Tokenization. Layout and widgets; the tokenizers and tables come from `core`."""
import streamlit as st

import course_ui
from core import figures
from core.cached import cached_bpe_merges, cached_gpt2_tokenizer, cached_model
from core.models import DEFAULT_MODEL
from core.tokenization import (bpe_merge_steps, distinct_words, pretokens, prompt_tokens, split_characters,
                               split_words, to_byte_symbols)

lesson, loaded = course_ui.lesson_page(1)
course_ui.keep_values("chip_view", "fallback_text")
prompt = course_ui.prompt_box()
model_tokenizer = loaded.tokenizer
tokenizers = {"Course model BPE": cached_model(DEFAULT_MODEL.key).tokenizer, "GPT-2 BPE": cached_gpt2_tokenizer()}
tokens = prompt_tokens(model_tokenizer, prompt)

if not prompt:
    st.info("Your prompt is empty. Type something in the box above to see it as tokens.")


def token_chips() -> None:
    if not tokens:
        st.caption("No tokens: the prompt is empty.")
        return
    show = st.radio("Show each token as", ["symbols", "text"], horizontal=True, key="chip_view",
                    format_func={"symbols": "its vocabulary entry (Ġ = space)", "text": "its text (␣ = space)"}.get)
    st.caption(f"Tokenizer of **{figures.md_escape(loaded.name)}** ({len(model_tokenizer):,} tokens in its vocabulary)")
    st.html(figures.token_chips_html(tokens, show=show))


def predict_count() -> None:
    text = lesson.meta.get("predict_text", "").strip()
    if not text:
        st.caption("(The lesson names no text to guess about: add `predict_text:` to its front matter.)")
        return
    st.code(text, language=None, wrap_lines=True)
    left, right = st.columns([2, 1])
    guess = left.number_input("Your guess: how many tokens?", 1, 500, None, key="predict_guess",
                              placeholder="type a number")
    checked = right.button("Check", key="predict_check", disabled=guess is None)
    if checked:
        st.session_state.predict_checked = (text, int(guess), loaded.name)
    if st.session_state.get("predict_checked", (None, None))[:2] != (text, guess):  # none checked yet, or another number
        st.caption("Commit to a number first: the answer appears when you press Check.")
        return
    _, guessed, _ = st.session_state.predict_checked
    pieces = prompt_tokens(model_tokenizer, text)
    off = guessed - len(pieces)
    verdict = "exactly right" if off == 0 else f"{abs(off)} {'too many' if off > 0 else 'too few'}"
    st.markdown(f"**{len(pieces)} tokens** for {figures.md_escape(loaded.name)}'s tokenizer; you guessed {guessed} "
                f"({verdict}).")
    st.html(figures.token_chips_html(pieces, show="text"))


def token_counts() -> None:
    characters, n_bytes = len(prompt), len(prompt.encode("utf-8"))
    columns = st.columns(4)
    columns[0].metric("Characters", f"{characters:,}")
    columns[1].metric("UTF-8 bytes", f"{n_bytes:,}")
    columns[2].metric("Tokens", f"{len(tokens):,}")
    columns[3].metric("Characters per token", f"{characters / len(tokens):.2f}" if tokens else "–")
    if len(tokens) > loaded.context_length:
        st.warning(f"That is more than the {loaded.context_length:,} tokens {figures.md_escape(loaded.name)} can read at once: "
                   f"the model would see only the last {loaded.context_length:,}.")


def token_table() -> None:
    with st.expander("Every token as a table"):
        if tokens:
            st.dataframe(figures.token_table(tokens), hide_index=True, width="stretch")
            if len(tokens) > 500:
                st.caption(f"The first 500 of {len(tokens):,} tokens.")
        else:
            st.caption("No tokens: the prompt is empty.")


def tokenizer_comparison() -> None:
    views = {f"{name} ({len(tok):,} tokens in vocabulary)": prompt_tokens(tok, prompt)
             for name, tok in tokenizers.items()}
    views["Characters"] = split_characters(prompt)
    views["Words (split at whitespace)"] = split_words(prompt)
    if not prompt:
        st.caption("Nothing to compare: the prompt is empty.")
        return
    course_ui.show_figure(figures.tokenizer_comparison_figure({name: len(v) for name, v in views.items()}, len(prompt)),
                          "comparison_chart", width="stretch")
    for tab, view in zip(st.tabs(list(views)), views.values()):
        with tab:
            st.html(figures.token_chips_html(view, limit=200, show="text"))


def bpe_merges() -> None:
    words = distinct_words(tokenizers["GPT-2 BPE"], prompt)
    if not words:
        st.caption("Type a prompt to pick a word from it.")
        return
    left, right = st.columns([2, 1])
    word = left.selectbox("A word from your prompt", words, format_func=figures.visible, key="merge_word")
    name = right.radio("Tokenizer", list(tokenizers), key="merge_tokenizer")
    tokenizer = tokenizers[name]
    for piece in pretokens(tokenizer, word):
        steps = bpe_merge_steps(piece, cached_bpe_merges(name, tokenizer))
        st.markdown(f"Start: {figures.md_escape(figures.visible(word))} as bytes → **{len(steps[0].pieces)}** symbols; "
                    f"after {len(steps) - 1} merges → **{len(steps[-1].pieces)}** token(s).")
        st.dataframe(figures.merge_steps_table(steps), hide_index=True, width="stretch")
    actual = [t.symbols for t in prompt_tokens(tokenizer, word)]
    st.caption(f"The tokenizer itself gives: {figures.md_escape(' | '.join(actual))}")


def words_split() -> None:
    words = distinct_words(tokenizers["GPT-2 BPE"], prompt)
    if not words:
        st.caption("Type a prompt to see how its words are split.")
        return
    st.dataframe(figures.word_splits_table(words, tokenizers), hide_index=True, width="stretch", height=300)


def byte_fallback() -> None:
    st.session_state.setdefault("fallback_text", course_ui.home_settings().get("fallback_example", "🙂"))
    text = st.text_input("Text to tokenize", key="fallback_text", max_chars=200)
    if not text:
        st.caption("Type some text above.")
        return
    for name, tok in tokenizers.items():
        st.markdown(f"**{name}**: {len(prompt_tokens(tok, text))} tokens")
        st.html(figures.token_chips_html(prompt_tokens(tok, text), show="symbols"))
    table = figures.byte_fallback_table(text, tokenizers)
    if len(table):
        st.markdown("Each character outside plain ASCII, its bytes, and how each tokenizer writes it alone:")
        st.dataframe(table, hide_index=True, width="stretch")
    st.caption(f"As byte symbols: {figures.md_escape(to_byte_symbols(text))}")


course_ui.render_lesson(lesson, {"predict-count": predict_count,
    "token-chips": token_chips, "token-counts": token_counts, "token-table": token_table,
    "tokenizer-comparison": tokenizer_comparison, "bpe-merges": bpe_merges, "words-split": words_split,
    "byte-fallback": byte_fallback,
}, key=course_ui.lesson_key(1), live=(course_ui.LiveStretch("token-chips"), course_ui.LiveStretch("byte-fallback")))
course_ui.lesson_navigation(1)
