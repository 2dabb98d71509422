"""Lesson 2: Embeddings. Layout and widgets; the math is in core.embeddings, the figures in core.figures."""
import pandas as pd
import streamlit as st

import course_ui
from core import embeddings, figures
from core.cached import cached_nearest_neighbours
from core.tokenization import prompt_tokens

lesson, loaded = course_ui.lesson_page(2)
prompt = course_ui.prompt_box()
trace = course_ui.lesson_trace(loaded, prompt)
matrix = embeddings.embedding_matrix(loaded.model)  # [vocab, d_model]


def token_name(token_id: int) -> str:
    return figures.token_name(loaded.tokenizer, token_id)


needs_trace = course_ui.needs_trace(trace)


@needs_trace
def embedding_lookup() -> None:
    labels = [f"{label} (id {i})" for label, i in zip(figures.token_labels(trace.token_strings), trace.token_ids)]
    st.caption(f"The embedding matrix of {figures.md_escape(loaded.name)} has {matrix.shape[0]:,} rows (one per token) and "
               f"{matrix.shape[1]} columns.")
    course_ui.chart("lookup", (), lambda: figures.heatmap(
        trace["embed.token"], list(range(matrix.shape[1])), labels, "The prompt's rows of the token embedding matrix",
        "entry", "token", show_values=False, colour_title="entry value"))


@needs_trace
def norms() -> None:
    course_ui.chart("norms", (), lambda: figures.bar(
        figures.token_labels(trace.token_strings), trace["embed.token"].norm(dim=-1).tolist(),
        "Length (norm) of each token's embedding vector", "token"))


@needs_trace
def cosine() -> None:
    labels = figures.token_labels(trace.token_strings)
    course_ui.chart("cosine", (), lambda: figures.heatmap(
        embeddings.cosine_matrix(trace["embed.token"]), labels, labels,
        "Cosine similarity between the prompt's token embeddings", "token", "token", colour_title="cosine"))


def neighbour_table(token_id: int) -> pd.DataFrame:
    return pd.DataFrame([{"token": token_name(i), "id": i, "cosine": round(c, 4)}
                         for i, c in cached_nearest_neighbours(loaded.name, token_id)])


@needs_trace
def neighbours() -> None:
    distinct = list(dict.fromkeys(trace.token_ids))
    token_id = st.selectbox("Token", distinct, format_func=lambda i: f"{token_name(i)} (id {i})", key="emb_token")
    st.dataframe(neighbour_table(token_id), hide_index=True)


def pca() -> None:
    prompt_ids = trace.token_ids if trace is not None else []
    seen = loaded.seen_token_ids
    vocabulary = embeddings.vocabulary_map(matrix, prompt_ids, seen)
    never = vocabulary.never_ids

    def build():
        marked = set(prompt_ids)
        model = figures.plotly_text(loaded.name)
        title = (f"The {len(vocabulary.ids)} tokens {model} saw in training, by PCA" if seen is not None
                 else f"{len(vocabulary.ids)} token embeddings of {model}, by PCA")
        return figures.embedding_map(
            vocabulary.coords, [figures.plotly_text(token_name(i)) for i in vocabulary.ids],
            [i in marked for i in vocabulary.ids], vocabulary.explained, title,
            apart=(vocabulary.never_coords, [figures.plotly_text(token_name(i)) for i in never]),
            apart_name=f"never in the training text ({len(never)})",
            group_name="seen in training" if seen is not None else "vocabulary")
    course_ui.chart("pca", (), build)
    if seen is None:
        st.caption(f"Which tokens {figures.md_escape(loaded.name)} saw in training is not recorded here, so the map "
                   "shows the tokenizer's first merges, whether or not the model ever met them.")
        return
    trained = [i for i in seen if i < matrix.shape[0]]
    columns = st.columns(3)
    columns[0].metric("Tokens in the training text", f"{len(trained):,} of {matrix.shape[0]:,}")
    columns[1].metric("Mean cosine among them", f"{embeddings.mean_pairwise_cosine(matrix[trained]):z.3f}")
    if len(never) > 1:
        columns[2].metric("Mean cosine among the never-seen", f"{embeddings.mean_pairwise_cosine(matrix[never]):z.3f}")


def compare_tokens() -> None:
    left, right = st.columns(2)
    chosen = []
    for column, key, default in ((left, "emb_first", " he"), (right, "emb_second", " she")):
        st.session_state.setdefault(key, default)
        text = column.text_input("Token (a leading space matters)", key=key, max_chars=50)
        tokens = prompt_tokens(loaded.tokenizer, text)
        if not tokens:
            column.caption("Type a token.")
            continue  # (the other box is still drawn, so it keeps what was typed in it)
        if len(tokens) > 1:
            column.caption(f"That is {len(tokens)} tokens for this model; using the first, "
                           f"{figures.md_escape(tokens[0].symbols)}.")
        chosen.append(tokens[0].id)
        column.dataframe(neighbour_table(tokens[0].id), hide_index=True)
    if len(chosen) < 2:
        return
    first, second = chosen
    shared = ({i for i, _ in cached_nearest_neighbours(loaded.name, first)}
              & {i for i, _ in cached_nearest_neighbours(loaded.name, second)})
    cosine = embeddings.cosine(matrix, first, second)
    st.metric("Cosine similarity of the two", f"{cosine:z.4f}")
    ties = (" (the two point the same way, and so many tokens lie at that same similarity to each that both lists are "
            "ties, broken arbitrarily)") if cosine > 0.9999 else ""
    st.caption("Shared neighbours: " + (figures.md_escape(", ".join(token_name(i) for i in sorted(shared)))
                                        if shared else "none") + ties)


course_ui.render_lesson(lesson, {
    "embedding-lookup": embedding_lookup, "norms": norms, "cosine": cosine, "neighbours": neighbours,
    "pca": pca, "compare-tokens": compare_tokens,
}, key=course_ui.lesson_key(2), live=(course_ui.LiveStretch("neighbours"),))
course_ui.lesson_navigation(2)
