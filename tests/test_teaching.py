"""What the lessons do for a student beyond the numbers: a link that opens a lesson on a prompt,
suggested prompts and starting choices from the lesson's markdown, predict-then-check, and
figures that say one thing once."""
from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from course_ui import lesson_key, section_key
from core.course import APP_DIR, LESSONS
from core.lessons import load_lesson
from core.tokenization import prompt_tokens
from tests.conftest import lesson_text, quoted


def open_app(**query) -> AppTest:
    app = AppTest.from_file(str(APP_DIR / "Home.py"), default_timeout=90)
    for key, value in query.items():
        app.query_params[key] = value
    app.run()
    return app


def test_a_shared_link_opens_with_its_prompt_and_the_address_follows_the_prompt():
    app = open_app(prompt="The dog ran to the")
    assert app.session_state["prompt"] == "The dog ran to the"
    app.switch_page(LESSONS[0].page).run()
    assert not app.exception and app.session_state["prompt"] == "The dog ran to the"
    app.text_area(key="prompt_box").input("A new prompt").run()
    assert app.query_params["prompt"] == "A new prompt"
    reloaded = open_app(prompt="A new prompt")  # a reload is a new session on the same address
    assert reloaded.session_state["prompt"] == "A new prompt"


def test_suggested_prompts_and_starting_choices_come_from_the_lesson_markdown():
    meta = load_lesson(LESSONS[3].markdown).meta
    suggestions = [text.strip() for text in meta["suggested_prompts"].split("|")]
    app = open_app()
    app.switch_page(LESSONS[3].page).run()
    layer, head = quoted(r"look at the last row of layer (\d), head (\d)", lesson_text("04_attention.md"))
    assert (app.session_state["attn_layer"], app.session_state["attn_head"]) == (int(layer), int(head))  # the text's head
    app.button(key="suggest-4-1").click().run()
    assert app.session_state["prompt"] == suggestions[1]
    picked = (int(head) + 1) % 4
    app.segmented_control(key="attn_head").set_value(picked).run()
    app.switch_page(LESSONS[4].page).run()
    app.switch_page(LESSONS[3].page).run()
    assert app.session_state["attn_head"] == picked  # starting choices apply once, not over the student's own


def test_predict_then_check_reveals_the_count_only_after_a_guess(bundled):
    text = load_lesson(LESSONS[0].markdown).meta["predict_text"]
    count = len(prompt_tokens(bundled.tokenizer, text))
    app = open_app()
    app.switch_page(LESSONS[0].page).run()
    assert not any(f"**{count} tokens**" in m.value for m in app.markdown)
    assert app.button(key="predict_check").disabled
    app.number_input(key="predict_guess").set_value(count + 3).run()
    app.button(key="predict_check").click().run()
    said = [m.value for m in app.markdown if "tokens** for" in m.value]
    assert said and said[0].startswith(f"**{count} tokens**") and f"you guessed {count + 3} (3 too many)" in said[0]


def test_the_temperature_chart_shows_one_series_at_t_1_and_the_hotter_column_is_hotter():
    app = open_app()
    app.switch_page(LESSONS[5].page).run()
    bars = [json.loads(c.proto.spec) for c in app.get("plotly_chart")]
    temperature = next(spec for spec in bars if "your temperature" in json.dumps(spec.get("layout", {}).get("title", "")))
    assert [trace["name"] for trace in temperature["data"]] == ["T = 1"]
    app.slider(key="s_temperature").set_value(2.0).run()
    bars = [json.loads(c.proto.spec) for c in app.get("plotly_chart")]
    temperature = next(spec for spec in bars if "your temperature" in json.dumps(spec.get("layout", {}).get("title", "")))
    assert [trace["name"] for trace in temperature["data"]] == ["T = 1", "T = 2"]
    app.button(key="s_generate").click().run()
    labels = [m.value for m in app.markdown if m.value.startswith("**T = ")]
    temperatures = [float(label.split("T = ")[1].split(",")[0]) for label in labels]
    assert temperatures[-1] > 2.0  # the side-by-side's third column is hotter than the student's


def test_every_figure_with_numbers_can_show_the_code_that_computed_them():
    from core.code_view import FIGURE_CODE, figure_code
    from core.course import COURSE

    without_numbers = {(0, "size-table"), (0, "compare"), (0, "export"), (1, "byte-fallback"), (2, "norms"),
                       (3, "learned-positions"), (4, "head-picker"), (4, "all-heads"), (4, "overview"), (4, "sankey"),
                       (5, "layer-picker"), (6, "guess"), (6, "recap"), (7, "data"), (7, "settings"),
                       (7, "controls"), (7, "finished")}  # pickers, links, and figures drawn from the same code as a neighbour
    for entry in COURSE:
        slots = {part.name for part in load_lesson(entry.markdown).parts if hasattr(part, "name") and not hasattr(part, "line")}
        for slot in slots:
            assert (entry.number, slot) in FIGURE_CODE or (entry.number, slot) in without_numbers, (entry.number, slot)
    for (number, slot), functions in FIGURE_CODE.items():
        sources = figure_code(number, slot)
        assert len(sources) == len(functions) and all(source.lstrip().startswith(("def ", "@")) for _, source in sources)
    app = open_app()
    app.switch_page(LESSONS[3].page).run()
    assert not [c for c in app.code if "def attention_step" in c.value]  # shown on request only
    app.session_state[section_key(lesson_key(4), "qkv")] = True  # the queries, keys and values are drawn on request too
    app.run()
    app.toggle(key=f"code-{lesson_key(4)}-qkv").set_value(True).run()
    shown = [c.value for c in app.code if "def attention_step" in c.value]
    import inspect

    from core import glassbox

    assert shown and shown[0].strip() == inspect.getsource(glassbox.attention_step).strip()  # read from the source


def test_lesson_1_describes_pre_tokens_as_gpt2s_tokenizer_makes_them():
    from core.tokenization import gpt2_tokenizer, pretokens
    from tests.conftest import lesson_text

    text = lesson_text("01_tokenization.md")
    assert "(`Ġthe`, `Ġ123`, `Ġ!!`)" in text and "(`don` + `'t`)" in text
    pieces = pretokens(gpt2_tokenizer(), "I don't  have 123 !! ok\nyes")
    assert {"Ġ123", "Ġ!!", "Ġdon", "'t"} <= set(pieces)  # digits and punctuation take the space; contractions split
    assert "Ġ" in pieces and "Ċ" in pieces  # an extra space and a line break are pre-tokens of their own


@pytest.mark.parametrize("n_tokens, every", [(8, 1), (21, 1), (120, None)])
def test_small_multiples_carry_token_labels_on_their_outer_axes(n_tokens, every):
    """Issue 16: the small multiples had no token labels at all. Every label when they fit, else
    every k-th; on the first column's rows and the last row's columns only."""
    import torch

    from core.figures import small_multiples

    labels = [f"tok{i}" for i in range(n_tokens)]
    patterns = [torch.rand(n_tokens, n_tokens) for _ in range(6)]
    figure = small_multiples(patterns, [f"head {h}" for h in range(6)], labels, columns=3, title="heads")
    layout = figure.layout
    y_first_column = [layout[f"yaxis{'' if i == 1 else i}"] for i in (1, 4)]  # rows 1 and 2, column 1
    x_last_row = [layout[f"xaxis{i}"] for i in (4, 5, 6)]
    inner = [layout["xaxis"], layout["yaxis2"]]
    shown = list(x_last_row[0].tickvals)
    assert all(list(axis.tickvals) == shown and axis.showticklabels for axis in y_first_column + x_last_row)
    assert not any(axis.showticklabels for axis in inner)
    if every == 1:
        assert shown == labels
    else:
        assert 1 < len(shown) < n_tokens and shown == labels[::labels.index(shown[1])]
    assert all(trace.x == tuple(labels) for trace in figure.data)  # every label stays on hover


def test_lesson_4_draws_every_head_of_the_model_on_request():
    app = open_app()
    app.switch_page(LESSONS[3].page).run()
    titles = lambda: [json.loads(chart.proto.spec)["layout"]["title"]["text"] for chart in app.get("plotly_chart")]  # noqa: E731
    assert not any(t.startswith("All layers (rows) × heads (columns)") for t in titles())
    app.toggle(key="attn_overview").set_value(True).run()
    overview = next(chart for chart in app.get("plotly_chart")
                    if json.loads(chart.proto.spec)["layout"]["title"]["text"].startswith("All layers (rows)"))
    assert len(json.loads(overview.proto.spec)["data"]) == 4 * 4  # the course model's 4 layers × 4 heads
    assert not app.exception


def test_a_figure_slot_marked_on_request_is_drawn_only_when_the_student_opens_it():
    """Issue 19: a lesson's figures are most of its drawing time in the browser. A slot written
    `{{ figure: name | on request: label }}` is a closed section: nothing in it is computed or sent
    until the student opens it; then it is the page's real figure."""
    from core.lessons import BadSlot, Figure, parse_lesson

    parts = parse_lesson("{{ figure: qkv | on request: Show the vectors }}\n{{ figure: qkv | on request: }}\n"
                         "{{ figure: qkv }}").parts
    assert parts == [Figure("qkv", "Show the vectors"), BadSlot("{{ figure: qkv | on request: }}"), Figure("qkv")]

    lesson = load_lesson(LESSONS[3].markdown)
    on_request = {part.name: part.on_request for part in lesson.parts if getattr(part, "on_request", None)}
    assert {"qkv", "head-output"} <= set(on_request)
    app = open_app()
    app.switch_page(LESSONS[3].page).run()
    charts = lambda: {c.proto.id.split("-", 2)[-1] for c in app.get("plotly_chart")}  # noqa: E731  ($$ID-hash-key)
    section = next(e for e in app.expander if e.label == on_request["qkv"])
    assert not section.children and not {"qkv-q", "qkv-k", "qkv-v"} & charts()  # closed: nothing drawn in it
    assert {"scores", "pattern", "sankey"} <= charts()  # the lesson around it is drawn
    app.session_state[section_key(lesson_key(4), "qkv")] = True  # what a click on the section does
    app.run()
    assert {"qkv-q", "qkv-k", "qkv-v", "scores"} <= charts()
    q = json.loads(next(c.proto.spec for c in app.get("plotly_chart") if c.proto.id.endswith("-qkv-q")))
    starting = (app.session_state["attn_layer"], app.session_state["attn_head"])
    assert q["layout"]["title"]["text"].startswith(f"Q (layer {starting[0]}, head {starting[1]})")  # its real queries
    # that it stays open across lessons is a browser matter (a click inside a live stretch):
    # tests/test_browser.py::test_a_control_reruns_its_stretch_and_everything_that_depends_on_it_follows
