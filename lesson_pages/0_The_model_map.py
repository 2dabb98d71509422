"""Lesson 0: the map of the model. Layout and widgets; the parts and costs are in core.model_map,
the drawing in core.diagrams."""
import pandas as pd
import streamlit as st

import course_ui
from core import diagrams, figures, model_map
from core.cached import cached_model, cached_trace
from core.families import FAMILIES
from core.models import REGISTRY, ModelLoadError, model_row, picker_label, reference_models

lesson, loaded = course_ui.lesson_page(0)
prompt = course_ui.prompt_box()
trace = course_ui.lesson_trace(loaded, prompt)
the_map = model_map.build_map(loaded.model)


def full_map_figure(model, trace_or_none, title: str):
    parts = model_map.build_map(model.model)
    numbers = model_map.prompt_numbers(trace_or_none) if trace_or_none is not None else {}
    return diagrams.model_map_figure(parts, title, numbers=numbers, ablated=course_ui.ablated_parts())


def map_figure() -> None:
    course_ui.chart("model-map", (tuple(sorted(course_ui.ablated_parts())),), lambda: full_map_figure(
        loaded, trace, f"{figures.plotly_text(loaded.name)}: {loaded.arch.n_layer} blocks, "
                       f"{the_map.total_parameters:,} parameters"), on_select=course_ui.open_clicked_lesson)
    if the_map.collapsed:
        st.caption(f"Blocks {the_map.collapsed[0]}–{the_map.collapsed[1]} have the same shape as the ones drawn and are "
                   "folded into one box.")


def inside() -> None:
    openable = [part for part in the_map.parts if part.kind in ("head", "mlp")]
    key = st.selectbox("Open a part", [part.key for part in openable], key="map_inside",
                       format_func=lambda k: next(f"{p.label} (block {p.layer})" if p.kind == "head" else p.label
                                                  for p in openable if p.key == k))
    st.dataframe(pd.DataFrame([{"piece": piece, "shape": shape, "parameters": count, "what it does": does}
                               for piece, shape, count, does in model_map.inside_of(loaded.model, key)]),
                 hide_index=True)


def costs() -> None:
    rows = [{"part": part.label if part.layer is None or part.kind in ("attention", "mlp", "block")
             else f"{part.label} (block {part.layer})", "shapes": part.shape, "parameters": part.parameters}
            for part in the_map.parts if part.kind not in ("head", "add", "tokens")]
    st.dataframe(pd.DataFrame(rows), hide_index=True, height=min(420, 40 + 35 * len(rows)))
    context = trace.n_tokens if trace is not None else loaded.context_length
    cost = model_map.model_costs(loaded.model, context)
    columns = st.columns(4)
    columns[0].metric("parameters (total)", f"{cost.parameters:,}")
    columns[1].metric("FLOPs per token, 2 × parameters", f"{cost.flops_rule:,}")
    columns[2].metric(f"exactly: matrices + attention at {context} tokens", f"{cost.flops_per_token:,}",
                      help=f"matrices {cost.flops_matrices:,} + attention {cost.flops_attention:,}")
    columns[3].metric("key/value cache per token (16-bit)", f"{cost.kv_cache_bytes_per_token / 1024:,.1f} KB")
    st.caption(f"Weights in memory: {cost.weights_bytes_float32 / 2**20:,.1f} MB in 32-bit floats (as here), "
               f"{cost.weights_bytes_bfloat16 / 2**20:,.1f} MB in 16-bit bfloat16. Sum of the table: "
               f"{the_map.total_parameters:,}.")


def size_table() -> None:
    rows = []
    for key in dict.fromkeys(["glassbox-stories", "glassbox-stories-llama", loaded.name]):  # the course models first
        try:
            model = cached_model(key)
        except ModelLoadError:
            continue
        rows.append(model_row(key, model.family, model.arch, model.parameter_count))
    rows += reference_models()
    table = pd.DataFrame([{
        "": "◀ in use" if row["name"] == loaded.name else "", "model": row["name"], "design": FAMILIES[row["family"]].name,
        "layers": row["layers"], "width": row["d_model"], "heads": row["heads"], "key/value heads": row["kv_heads"],
        "context": row["context"], "parameters": f"{row['parameters'] / 1e6:,.1f}M",
        "memory, 16-bit": f"{row['parameters'] * 2 / 2**30:,.2f} GB"} for row in rows])
    st.dataframe(table, hide_index=True)


def compare() -> None:
    keys = [choice.key for choice in REGISTRY if not choice.from_hub] + list(st.session_state.get("trained_models", {}))
    keys += [loaded.name] if loaded.name not in keys else []
    labels = {choice.key: picker_label(choice) for choice in REGISTRY} | st.session_state.get("trained_models", {})
    left, right = st.columns(2)
    first = left.selectbox("First model", keys, key="map_first", format_func=lambda k: labels.get(k, k))
    second = right.selectbox("Second model", keys, index=min(1, len(keys) - 1), key="map_second",
                             format_func=lambda k: labels.get(k, k))
    try:
        models = [cached_model(first), cached_model(second)]
    except ModelLoadError as error:
        st.warning(str(error))
        return
    differences = model_map.design_differences(models[0].arch, models[1].arch)
    st.markdown("**What differs:** " + ("; ".join(figures.md_escape(d) for d in differences) if differences
                                        else "nothing in the design (only the weights)."))
    for column, model in zip((left, right), models):
        model_trace = cached_trace(model.name, prompt) if prompt else None
        course_ui.chart(f"compare-{column is left}", (model.name,), lambda model=model: diagrams.model_map_figure(
            model_map.build_map(model.model, small=True), figures.plotly_text(model.name), show_labels=True), column)
        if model_trace is not None:
            top = model_trace.next_token_probs().topk(5)
            column.dataframe(pd.DataFrame([{"next token": figures.token_name(model.tokenizer, i), "probability": round(p, 4)}
                                           for i, p in zip(top.indices.tolist(), top.values.tolist())]),
                             hide_index=True)


def export() -> None:
    title = f"{figures.plotly_text(loaded.name)}: the map of the model"
    st.download_button("Download the map as a web page (opens in any browser, no server needed)",
                       data=lambda: full_map_figure(loaded, trace, title).to_html(include_plotlyjs=True, full_html=True),
                       file_name=f"glassbox-map-{loaded.name.rsplit('/', 1)[-1]}.html", mime="text/html",
                       key="map_download", on_click="ignore")
    st.caption("For a picture, use the camera button above the map (it saves a PNG).")


course_ui.go_where_the_map_was_clicked(0)
course_ui.render_lesson(lesson, {"map": map_figure, "inside": inside, "costs": costs, "size-table": size_table, "compare": compare,
                                 "export": export}, key=course_ui.lesson_key(0))
course_ui.lesson_navigation(0)
