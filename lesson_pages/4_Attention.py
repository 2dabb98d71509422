"""Lesson 4: Attention. Layout and widgets; the math is in core.attention, the figures in core.figures."""
import pandas as pd
import streamlit as st
import torch

import course_ui
import induction_views
from core import attention, diagrams, figures
from core.cached import cached_trace
from core.glassbox import concatenate_heads
from core.models import model_row, reference_models

OVERVIEW_TOKENS = 32  # the all-layers overview draws the last tokens only
SANKEY_TOKENS = 24  # the attention flow draws the last tokens only
SANKEY_MIN_WEIGHT = 0.1  # and the bands at least this wide (the caption says what that leaves out)

lesson, loaded = course_ui.lesson_page(4)
course_ui.keep_values("attn_layer", "attn_head", "attn_ablate")
prompt = course_ui.prompt_box()
trace = course_ui.lesson_trace(loaded, prompt)
if trace is not None:
    labels = figures.token_labels(trace.token_strings)


def read_head_choice() -> None:
    """The layer and head as the picker now says (again at each rerun of the picker's stretch)."""
    global layer, head, d_head, kv_head
    if trace is not None:
        layer, head = course_ui.layer_head_state(trace, "attn")
        d_head = trace["q", layer].shape[-1]
        kv_head = trace.arch.kv_head_of(head)


read_head_choice()
course_ui.start_again_on_a_new_prompt("attn_query")


needs_trace = course_ui.needs_trace(trace)


@needs_trace
def head_picker() -> None:
    course_ui.layer_head_picker(trace, "attn")
    arch = trace.arch
    shared = f"; head {head} reads key/value head {kv_head} of {arch.n_kv_head}" if arch.group_size > 1 else ""
    window = arch.window[layer]
    local = f" Layer {layer} is local: a query sees only its last {window} keys." if window else ""
    st.caption(f"{trace.n_layer} layers × {trace.n_head} heads; each head's vectors have "
               f"d_head = {d_head} entries{shared}; scores are divided by {float(trace['attn_scale', layer]):.3f}.{local}")


@needs_trace
def qkv() -> None:
    q, k = trace.scored_qk(layer, head)  # [pos, d_head] each: rotated where the model is rotary
    turned = " turned by position" if trace.arch.rotary_dim else ""
    vectors = {"q": (q, f"Q{turned} (layer {layer}, head {head})"),
               "k": (k, f"K{turned} (layer {layer}, key/value head {kv_head})"),
               "v": (trace["v", layer][kv_head], f"V (layer {layer}, key/value head {kv_head})")}
    columns = st.columns(3)
    for column, (name, (values, title)) in zip(columns, vectors.items()):
        course_ui.chart(f"qkv-{name}", (layer, head), lambda values=values, title=title: figures.heatmap(
            values, list(range(d_head)), labels, title, "entry", "position", show_values=False, colour_title="entry value"), where=column)


@needs_trace
def scores() -> None:
    stages = [(trace[name, layer][head], title) for name, title in (("scores", "Q·Kᵀ"), ("scores_scaled", "÷ √d_head"),
                                                                      ("scores_masked", "masked"))]
    course_ui.chart("scores", (layer, head), lambda: figures.heatmap_panels(
        stages, labels, labels, f"Scores of layer {layer}, head {head}, step by step", "key", "query", colour_title="score"))


@needs_trace
def pattern() -> None:
    course_ui.chart("pattern", (layer, head), lambda: figures.heatmap(
        trace["pattern", layer][head], labels, labels, f"Attention pattern, layer {layer}, head {head}",
        "key (looked at)", "query (looking)", diverging=False, value_range=(0, 1),
        colour_title="attention weight"))


@needs_trace
def head_output() -> None:
    z = trace["z", layer]  # [head, pos, d_head]
    concatenated = concatenate_heads(z)  # [pos, head * d_head]
    columns = st.columns(3)
    course_ui.chart("z", (layer, head), lambda: figures.heatmap(
        z[head], list(range(d_head)), labels, f"Head {head} output z = pattern · V", "entry", "position",
        show_values=False, colour_title="entry value"), where=columns[0])
    course_ui.chart("concat", (layer,), lambda: figures.heatmap(
        concatenated, list(range(concatenated.shape[1])), labels, "All heads side by side", "entry", "position",
        show_values=False, colour_title="entry value"), where=columns[1])
    course_ui.chart("attn-out", (layer,), lambda: figures.heatmap(
        trace["attn_out", layer], list(range(trace["attn_out", layer].shape[1])), labels,
        "× W_O + b_O → residual stream", "entry", "position", show_values=False, colour_title="entry value"), where=columns[2])


@needs_trace
def by_hand() -> None:
    query = st.selectbox("Query position", range(trace.n_tokens), index=trace.n_tokens - 1, key="attn_query",
                         format_func=lambda i: figures.position_name(i, trace.token_strings[i]))
    steps = attention.worked_query_row(trace, layer, head, query)
    table = pd.DataFrame([{
        "key": f"{s.key} {figures.visible(s.key_token)}", "q·k": round(s.dot, 4),
        f"÷ {float(trace['attn_scale', layer]):.3f}": None if s.masked else round(s.scaled, 4),
        "masked?": "yes (−∞)" if s.masked else "", "exp(score − max)": round(s.exp, 4), "weight": round(s.weight, 4),
    } for s in steps])
    st.dataframe(table, hide_index=True, height=min(600, 40 + 35 * len(steps)))
    total = sum(s.weight for s in steps)
    largest_gap = max(abs(s.weight - float(trace["pattern", layer][head, query, s.key])) for s in steps)
    st.caption(f"Weights sum to {total:.6f}. The largest difference from the model's own pattern row is "
               f"{largest_gap:.1e}.")


@needs_trace
def all_heads() -> None:
    patterns = [trace["pattern", layer][h] for h in range(trace.n_head)]
    course_ui.chart("all-heads", (layer,), lambda: figures.small_multiples(
        patterns, [f"head {h}" for h in range(trace.n_head)], labels, columns=min(4, trace.n_head),
        title=f"Every head of layer {layer}"))


@needs_trace
def overview() -> None:
    heads = trace.n_layer * trace.n_head  # drawn on request: the lesson's heaviest figure for the browser
    if not st.toggle(f"Show every head of the model ({trace.n_layer} layers × {trace.n_head} heads = {heads} patterns)",
                     key="attn_overview"):
        return
    first = max(0, trace.n_tokens - OVERVIEW_TOKENS)
    patterns = [trace["pattern", l][h, first:, first:]
                for l in range(trace.n_layer) for h in range(trace.n_head)]
    titles = [f"{l}.{h}" for l in range(trace.n_layer) for h in range(trace.n_head)]
    note = f" (last {OVERVIEW_TOKENS} tokens)" if first else ""
    course_ui.chart("overview", (), lambda: figures.small_multiples(
        patterns, titles, labels[first:], columns=trace.n_head,
        title=f"All layers (rows) × heads (columns), layer.head{note}"))


@needs_trace
def sankey() -> None:
    links = attention.attention_links(trace, layer, head, min_weight=SANKEY_MIN_WEIGHT, last_tokens=SANKEY_TOKENS)
    course_ui.chart("sankey", (layer, head), lambda: figures.attention_sankey(
        links, trace.token_strings, f"Attention flow, layer {layer}, head {head}"))
    queries = min(trace.n_tokens, SANKEY_TOKENS)
    left_out = 1 - sum(w for _, _, w in links) / queries
    earlier = f" and keys before the last {SANKEY_TOKENS} tokens" if trace.n_tokens > SANKEY_TOKENS else ""
    st.caption(f"Left out (bands below {SANKEY_MIN_WEIGHT}{earlier}): {left_out:z.0%} of the attention of these "
               f"{queries} queries.")


@needs_trace
def head_roles() -> None:
    scores_by_role = attention.head_scores(trace)
    measured_on = attention.role_queries(trace)  # 0: the role cannot show on this prompt; its map is left blank
    heads = [str(h) for h in range(trace.n_head)]
    layers = [str(l) for l in range(trace.n_layer)]
    course_ui.chart("head-roles", (), lambda: figures.heatmap_panels(
        [(table if measured_on[role] else torch.full_like(table, float("nan")), f"{role} score")
         for role, table in scores_by_role.items()], heads, layers,
        "How much of each head's attention fits each role, on your prompt",
        "head", "layer", diverging=False, value_range=(0, 1), colour_title="share of attention", columns=2))
    for role, table in scores_by_role.items():
        if measured_on[role] == 0:
            why = ("it needs at least two tokens" if role in ("previous-token", "first-token") else
                   "no token in it comes twice (“The” and “ the” are different tokens; try **Repeat my prompt**, "
                   "in the section on the two heads further down)")
            st.caption(f"{role.capitalize()} score: not measured on your prompt, because {why}.")
        else:
            best_layer, best_head, best = attention.strongest_head(table)
            positions = f"{measured_on[role]} position" + ("s" if measured_on[role] > 1 else "")
            st.caption(f"{role.capitalize()} score, highest on your prompt: layer {best_layer}, head {best_head} "
                       f"({best:.2f}, over {positions}).")


@needs_trace
def ablation() -> None:
    options = [(l, h) for l in range(trace.n_layer) for h in range(trace.n_head)]
    course_ui.keep_only_offered("attn_ablate", options)
    chosen = st.multiselect("Heads to switch off (layer.head)", options, key="attn_ablate",
                            format_func=lambda pair: f"{pair[0]}.{pair[1]}")
    after = cached_trace(loaded.name, prompt, ablated_heads=frozenset(chosen)) if chosen else trace
    course_ui.prediction_change_view(loaded, trace, after, key="attn-ablation")


@needs_trace
def induction_circuit() -> None:
    induction_views.circuit_on_prompt(loaded, prompt, trace, labels)


def induction_growth() -> None:
    induction_views.growth(loaded)


def head_groups() -> None:
    course_ui.chart("head-groups", (), lambda: diagrams.head_groups_figure(loaded.arch, figures.plotly_text(loaded.name)))


def kv_cache() -> None:
    rows = attention.kv_cache_rows([model_row(loaded.name, loaded.family, loaded.arch, loaded.parameter_count)]
                                     + reference_models())
    st.dataframe(pd.DataFrame([{
        "model": row.model, "layers": row.layers, "query heads": row.heads, "key/value heads": row.kv_heads,
        "d_head": row.d_head, "cache per token (16-bit)": f"{row.bytes_per_token / 1024:,.1f} KB",
        "full context": f"{row.context:,} tokens = {row.full_context_bytes / 2**30:,.2f} GB",
    } for row in rows]), hide_index=True)


course_ui.render_lesson(lesson, {
    "head-picker": head_picker, "qkv": qkv, "scores": scores, "pattern": pattern, "head-output": head_output,
    "by-hand": by_hand, "all-heads": all_heads, "overview": overview, "sankey": sankey, "head-roles": head_roles,
    "induction": induction_circuit, "induction-growth": induction_growth, "ablation": ablation,
    "head-groups": head_groups, "kv-cache": kv_cache,
}, key=course_ui.lesson_key(4), live=(
    course_ui.LiveStretch("head-picker", "sankey", read_head_choice),))
course_ui.lesson_navigation(4)
