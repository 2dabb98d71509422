"""Lesson 3: Positional encoding. Layout and widgets; the math is in core.positions and core.embeddings."""
import pandas as pd
import streamlit as st

import course_ui
from core import embeddings, figures, positions
from core.cached import cached_reorder_experiment

MAP_POSITIONS = 128  # how many positions the matrix figures draw

lesson, loaded = course_ui.lesson_page(3)
course_ui.keep_values("pos_how")
prompt = course_ui.prompt_box()
trace = course_ui.lesson_trace(loaded, prompt)
count = min(MAP_POSITIONS, loaded.context_length)
learned = positions.learned_positions(loaded.model, count)  # [count, d_model]


needs_trace = course_ui.needs_trace(trace)


def matrix_pair(matrix, name: str, key: str) -> None:
    left, right = st.columns(2)
    course_ui.chart(f"{key}-matrix", (), lambda: figures.heatmap(
        matrix, list(range(matrix.shape[1])), list(range(matrix.shape[0])), f"{name}: positions × entries", "entry",
        "position", show_values=False), where=left)
    course_ui.chart(f"{key}-similarity", (), lambda: figures.heatmap(
        embeddings.cosine_matrix(matrix), list(range(count)), list(range(count)),
        f"{name}: cosine similarity of positions", "position", "position", show_values=False), where=right)


@needs_trace
def embedding_sum() -> None:
    labels = figures.token_labels(trace.token_strings)
    entries = list(range(trace["embed.token"].shape[1]))
    columns = st.columns(3)
    for column, (name, title) in zip(columns, (("embed.token", "token embedding"), ("embed.position", "+ position embedding"),
                                               ("blocks.0.resid_pre", "= input to block 0"))):
        course_ui.chart(f"sum-{name}", (), lambda name=name, title=title: figures.heatmap(
            trace[name], entries, labels, title, "entry", "token", show_values=False), where=column)


def learned_positions() -> None:
    matrix_pair(learned, f"Learned (wpe of {figures.plotly_text(loaded.name)})", "learned")


def sinusoidal() -> None:
    matrix_pair(positions.sinusoidal_encoding(count, learned.shape[1]), "Sinusoidal", "sinusoidal")


@needs_trace
def reorder() -> None:
    if trace.n_tokens < 3:
        st.caption("The experiment needs a prompt of at least three tokens.")
        return
    left, right = st.columns(2)
    how = left.radio("New order of the earlier tokens", ["reverse", "shuffle"], horizontal=True, key="pos_how")
    seed = right.number_input("Shuffle seed", 0, 9999, 0, key="pos_seed", disabled=how != "shuffle")
    order = positions.reordered(trace.token_ids, how, int(seed))
    result = cached_reorder_experiment(loaded.name, tuple(trace.token_ids), tuple(order))
    st.markdown("Reordered prompt:")
    st.code("".join(trace.token_strings[i] for i in order), language=None, wrap_lines=True)
    name = lambda token_id: figures.token_name(loaded.tokenizer, token_id)  # noqa: E731
    st.dataframe(pd.DataFrame([
        {"": "largest change of block 0's attention output at the last position",
         "with positions": f"{result.block0_change[True]:.2e}", "positions dropped": f"{result.block0_change[False]:.2e}"},
        {"": "largest change of any next-token probability",
         "with positions": f"{result.final_change[True]:.2e}", "positions dropped": f"{result.final_change[False]:.2e}"},
        {"": "predicted next token, original order",
         "with positions": name(result.top_token[(True, False)]), "positions dropped": name(result.top_token[(False, False)])},
        {"": "predicted next token, new order",
         "with positions": name(result.top_token[(True, True)]), "positions dropped": name(result.top_token[(False, True)])},
    ]), hide_index=True)


course_ui.render_lesson(lesson, {
    "embedding-sum": embedding_sum, "learned-positions": learned_positions, "sinusoidal": sinusoidal,
    "reorder": reorder,
}, key=course_ui.lesson_key(3))
course_ui.lesson_navigation(3)
