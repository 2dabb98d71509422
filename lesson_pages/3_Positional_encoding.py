"""Lesson 3: Positional encoding. Layout and widgets; the math is in core.positions and core.embeddings."""
import pandas as pd
import streamlit as st

import course_ui
from core import diagrams, embeddings, figures, positions
from core.cached import cached_model, cached_reorder_experiment, cached_shift_change, cached_trace

MAP_POSITIONS = 128  # how many positions the matrix figures draw
SHIFT_TOKENS = 64  # the shift experiment uses the prompt's last tokens, so that they fit any shift offered

lesson, loaded = course_ui.lesson_page(3)
course_ui.keep_values("pos_how")
prompt = course_ui.prompt_box()
trace = course_ui.lesson_trace(loaded, prompt)
count = min(MAP_POSITIONS, loaded.context_length)
learned = positions.learned_positions(loaded.model, count)  # [count, d_model], None for a rotary model


needs_trace = course_ui.needs_trace(trace)


def matrix_pair(matrix, name: str, key: str) -> None:
    left, right = st.columns(2)
    course_ui.chart(f"{key}-matrix", (), lambda: figures.heatmap(
        matrix, list(range(matrix.shape[1])), list(range(matrix.shape[0])), f"{name}: positions × entries", "entry",
        "position", show_values=False, colour_title="entry value"), where=left)
    course_ui.chart(f"{key}-similarity", (), lambda: figures.heatmap(
        embeddings.cosine_matrix(matrix), list(range(count)), list(range(count)),
        f"{name}: cosine similarity of positions", "position", "position", show_values=False, colour_title="cosine"), where=right)


@needs_trace
def embedding_sum() -> None:
    labels = figures.token_labels(trace.token_strings)
    entries = list(range(trace["embed.token"].shape[1]))
    parts = (("embed.token", "token embedding"), ("embed.position", "+ position embedding"),
             ("blocks.0.resid_pre", "= input to block 0"))
    if "embed.position" not in trace:
        st.caption(f"{figures.md_escape(loaded.name)} adds no position vector: its input to block 0 is the token "
                   "embedding alone, and positions enter inside attention (rotary, below).")
        parts = (("embed.token", "token embedding = input to block 0"),)
    columns = st.columns(3)
    for column, (name, title) in zip(columns, parts):
        course_ui.chart(f"sum-{name}", (), lambda name=name, title=title: figures.heatmap(
            trace[name], entries, labels, title, "entry", "token", show_values=False, colour_title="entry value"), where=column)


def learned_positions() -> None:
    if learned is None:
        st.info(f"{loaded.name} has no learned position table: it turns its queries and keys instead (rotary "
                "positions, below). Pick a GPT-2-design model in the sidebar to see one.")
        return
    matrix_pair(learned, f"Learned (wpe of {figures.plotly_text(loaded.name)})", "learned")


def sinusoidal() -> None:
    width = learned.shape[1] if learned is not None else loaded.arch.d_model
    matrix_pair(positions.sinusoidal_encoding(count, width), "Sinusoidal", "sinusoidal")


def rotary_model():
    """The model the rotary figures use: the one in use if it is rotary, else the Llama-design course
    model (it shares the GPT-2-design course model's tokenizer, so it reads the same tokens)."""
    from core.models import ModelLoadError

    if loaded.arch.rotary_dim:
        return loaded
    try:
        return cached_model("glassbox-stories-llama")
    except ModelLoadError as error:
        st.warning(str(error))
        return None


@needs_trace
def rotary() -> None:
    model = rotary_model()
    if model is None:
        return
    rotary_trace = trace if model is loaded else cached_trace(model.name, prompt)
    token = rotary_trace.n_tokens - 1
    q = rotary_trace["q", 0][0, token]  # [d_head] head 0's query of the last token, before any turn
    half = model.arch.rotary_dim // 2
    pairs = positions.rotary_pairs(model.model, q, [0, token, token + 8], [0, half // 4, half - 1])
    course_ui.chart("rotary", (model.name,), lambda: diagrams.rotary_pairs_figure(
        pairs, figures.plotly_text(model.name), figures.token_at(token, rotary_trace.token_strings[token])))
    st.caption(f"{figures.md_escape(model.name)}: rotary on {model.arch.rotary_dim} of each head's {model.arch.d_head} "
               f"dims, as {half} pairs; layer 0, head 0.")


@needs_trace
def shift_test() -> None:
    from core.models import ModelLoadError

    room = min(loaded.context_length, 128)
    ids = trace.token_ids[-min(SHIFT_TOKENS, room // 2):]  # leaves room to move them along within the context
    shift = st.slider("Move the whole prompt along by (positions)", 1, room - len(ids), min(10, room - len(ids)),
                      key="pos_shift")
    rows = []
    for key in ("glassbox-stories", "glassbox-stories-llama", loaded.name):
        if key in [row["model"] for row in rows]:
            continue
        try:
            model = cached_model(key)
        except ModelLoadError:
            continue
        if model.vocabulary != loaded.vocabulary:
            continue  # another tokenizer reads other tokens: not the same prompt
        change = cached_shift_change(key, tuple(ids), shift)
        rows.append({"model": key, "positions": "rotary" if model.arch.rotary_dim else "learned, added",
                     "largest change of a block-0 attention score": f"{change:.2e}"})
    st.dataframe(pd.DataFrame(rows), hide_index=True)


@needs_trace
def reorder() -> None:
    if trace.n_tokens < 3:
        st.caption("The experiment needs a prompt of at least three tokens.")
        return
    left, right = st.columns(2)
    how = left.radio("New order of the earlier tokens", ["reverse", "shuffle"], horizontal=True, key="pos_how")
    seed = right.number_input("Shuffle seed", 0, 9999, 0, key="pos_seed", disabled=how != "shuffle")
    order = positions.reordered(trace.token_ids, how, int(seed))
    if [trace.token_ids[i] for i in order] == list(trace.token_ids):
        st.caption("This order gives the prompt back as it was (the same tokens in the same places), so nothing can "
                   "change: try another shuffle seed, or a prompt with more different tokens.")
        return
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
    "rotary": rotary, "shift-test": shift_test, "reorder": reorder,
}, key=course_ui.lesson_key(3), live=(course_ui.LiveStretch("shift-test"),))
course_ui.lesson_navigation(3)
