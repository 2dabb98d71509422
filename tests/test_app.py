"""Every page runs under AppTest with the default prompt and with hostile prompts."""
from __future__ import annotations

import json
from html.parser import HTMLParser

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core.course import APP_DIR, COURSE, LESSONS
from core.figures import md_escape, plain_text
from core.lessons import load_lesson
from core.plot_style import BROWSER_CONFIG
from tests.conftest import sent_array
from tests.streamlit_server import open_every_section, switch_to
from tests.test_live_training import wait_for  # one condition wait for every training test

PAGES = ["Home.py"] + [entry.page for entry in LESSONS if entry.is_built]
SCRIPT = "<script>alert(1)</script>"
HOSTILE_PROMPTS = {
    "empty": "",
    "one-token": "a",  # nothing to predict from: lesson 4's loss figure once crashed on it
    "5000-characters": ("The cat sat on the mat. Mia had a red ball. " * 120)[:5000],
    "emoji": "🙂👍🏽🇬🇧 the cat 🐈‍⬛ sat 🎉",
    "right-to-left": "שלום עולם. مرحبا بالعالم. The cat",
    "control-characters": "a\x00b\x07c\x1b[31m\td\r\ne\x7f\u200b\u202e",
    "script": SCRIPT,
    "markdown-and-html": '**bold** [link](javascript:alert(1)) <img src=x onerror=alert(1)> `tick` $x$ <b>',
}
OUR_HTML_TAGS = {"style", "div", "span"}  # all the HTML the app itself writes (token chips)


class TagCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, list[str]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, [name for name, _ in attrs]))


def html_tags(text: str) -> list[tuple[str, list[str]]]:
    collector = TagCollector()
    collector.feed(text)
    return collector.tags


def run_page(page: str, prompt: str | None = None) -> AppTest:
    """Open the app at Home (its entry point, as `streamlit run Home.py` does), then go to `page`."""
    app = AppTest.from_file(str(APP_DIR / "Home.py"), default_timeout=60)
    open_every_section(app)  # every figure, those drawn on request too
    if prompt is not None:
        app.session_state["prompt"] = prompt
    app.run()
    if page != "Home.py":
        assert not app.exception, [e.value for e in app.exception]
        app.switch_page(page).run()
    return app


def rendered_texts(app: AppTest) -> list[tuple[str, str]]:
    """(element type, text) for every element whose text the browser renders as markdown or HTML."""
    found = []
    for kind in ("markdown", "caption", "title", "header", "subheader", "info", "warning", "error", "success"):
        for element in app.get(kind):
            found.append((kind, element.proto.body if hasattr(element.proto, "body") else str(element.value)))
    for element in app.get("html"):
        found.append(("html", element.proto.body))
    return found


def plotly_labels(spec: dict) -> list[str]:
    """Every axis, text and node label and the title of a Plotly figure (where user text goes)."""
    labels = []
    for trace in spec.get("data", []):
        for values in (trace.get("x"), trace.get("y"), trace.get("text"), (trace.get("node") or {}).get("label")):
            if isinstance(values, list):
                labels += [v for v in values if isinstance(v, str)]
    title = (spec.get("layout") or {}).get("title") or {}
    labels += [title["text"]] if isinstance(title, dict) and isinstance(title.get("text"), str) else []
    return labels


def assert_healthy(app: AppTest) -> None:
    assert not app.exception, [e.value for e in app.exception]
    for kind, text in rendered_texts(app):
        for tag, attributes in html_tags(text):
            # markdown elements carry no HTML at all; HTML elements only the app's own tags
            assert kind == "html" and tag in OUR_HTML_TAGS, f"unescaped HTML <{tag}> in a {kind} element: {text[:300]!r}"
            assert not any(name.startswith("on") for name in attributes), f"event handler in {text[:300]!r}"
    for chart in app.get("plotly_chart"):
        spec = json.loads(chart.proto.spec)
        for label in plotly_labels(spec):  # Plotly renders some tags in labels: token text must be escaped
            assert "<" not in label, f"unescaped '<' in a Plotly label: {label!r}"
        assert_course_look(chart.proto.theme, spec)
        assert_axes_say_what_they_show(spec)
        assert json.loads(chart.proto.config) == BROWSER_CONFIG  # drawn without Plotly's toolbar (issue 19)
        title = ((spec.get("layout") or {}).get("title") or {}).get("text")
        if title:  # a screen reader names the chart by its title...
            assert chart.proto.alt == plain_text(title), title
        elif spec.get("data"):  # ...or one without (the sidebar map) by a name of its own
            assert chart.proto.alt, spec  # (only Home's hidden, empty chart, course_ui.load_lesson_elements_early, has none)


def assert_axes_say_what_they_show(spec: dict) -> None:
    """An axis titled "probability" holds probabilities: lesson 5's gate × up bars (values to 15)
    were drawn on one, the title of the bar figure they share with lesson 6."""
    layout = spec["layout"]
    for name, axis in layout.items():
        if not (name.startswith("yaxis") and ((axis.get("title") or {}).get("text") or "").lower() == "probability"):
            continue
        reference = "y" + name.removeprefix("yaxis")
        values = [float(v) for trace in spec.get("data", []) if trace.get("yaxis", "y") == reference
                  for v in sent_array(trace.get("y") or []).ravel()  # a list, or Plotly's binary block
                  if isinstance(v, (int, float, np.integer, np.floating))]  # (not a gap's None)
        assert values and all(-1e-9 <= v <= 1 + 1e-9 for v in values), (layout.get("title"), values[:5])


def assert_course_look(theme: str, spec: dict) -> None:
    """A figure is drawn in the course's one house style (core.plot_style), written into the figure
    (no template: a copy of a figure with one is drawn all over again), not restyled by Streamlit's
    theme, and every colour bar it shows says what its colours measure."""
    from core import plot_style

    layout = spec["layout"]
    title = (layout.get("title") or {}).get("text", "")
    assert theme == "", f"{title!r} is drawn in Streamlit's theme, not the course's style"
    assert "template" not in layout and layout["datarevision"] == plot_style.ONE_DATA_REVISION, title
    assert layout["font"]["family"] == plot_style.FONT and layout["colorway"] == plot_style.COLOURS, title
    for axis in (key for key in layout if key.startswith(("xaxis", "yaxis"))):
        assert layout[axis]["gridcolor"] == plot_style.GRID, f"{axis} of {title!r}"
    for trace in spec.get("data", []):
        if trace.get("type") in ("heatmap", "contour") and trace.get("showscale", True):
            assert ((trace.get("colorbar") or {}).get("title") or {}).get("text"), f"untitled colour bar in {title!r}"
        if trace.get("type") == "scatter":  # a line's binary block made the browser draw it twice (plot_style.BINARY_TRACES)
            assert not binary_blocks(trace), f"a {trace.get('type')} of {title!r} sends {binary_blocks(trace)} as binary"


def binary_blocks(value, path: str = "") -> list[str]:
    """Where in a sent figure's dict number arrays are binary blocks ({"dtype", "bdata"})."""
    if isinstance(value, dict):
        if "bdata" in value:
            return [path]
        return [found for key, item in value.items() for found in binary_blocks(item, f"{path}.{key}")]
    if isinstance(value, list):
        return [found for index, item in enumerate(value) for found in binary_blocks(item, f"{path}[{index}]")]
    return []


@pytest.mark.parametrize("page", PAGES)
def test_page_runs_with_the_default_prompt(page, default_runs):
    app = default_runs[0][page]  # opened once for the whole session (tests/conftest.py)
    assert_healthy(app)
    default = load_lesson("home.md").meta["default_prompt"]
    assert default and app.session_state["prompt"] == default  # a new student starts from lessons/home.md's
    boxes = [box for box in app.text_area if box.key == "prompt_box"]
    assert all(box.value == default for box in boxes)  # and sees it in the prompt box where the page has one


def as_plotly_checks_it(spec: dict) -> dict:
    """A figure's dict as Plotly's own checking makes it (every property looked up, named colour
    scales spelled out, magic underscores and string titles turned into what plotly.js reads), in
    JSON: what a figure built unchecked (core.plot_style.figure) must already be."""
    import plotly.graph_objects as go
    import plotly.io as pio

    return json.loads(pio.to_json(go.Figure(spec), validate=False))


def first_difference(sent, checked, path: str = "") -> str | None:
    """Where two figure dicts first differ, and how ('layout.xaxis.title: 'x' != {'text': 'x'}')."""
    if isinstance(sent, dict) and isinstance(checked, dict):
        for key in sorted(sent.keys() | checked.keys()):
            found = first_difference(sent.get(key, "(absent)"), checked.get(key, "(absent)"), f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(sent, list) and isinstance(checked, list) and len(sent) == len(checked):
        return next(filter(None, (first_difference(a, b, f"{path}[{i}]") for i, (a, b) in enumerate(zip(sent, checked)))),
                    None)
    return None if sent == checked else f"{path.lstrip('.')}: sent {str(sent)[:120]} != checked {str(checked)[:120]}"


def assert_sent_as_plotly_checks_it(app: AppTest) -> None:
    for chart in app.get("plotly_chart"):
        sent = json.loads(chart.proto.spec)
        title = ((sent.get("layout") or {}).get("title") or {}).get("text")
        difference = first_difference(sent, as_plotly_checks_it(sent))
        assert difference is None, f"{title!r} is not what Plotly's checking would send: {difference}"


@pytest.mark.parametrize("page", PAGES)
def test_every_chart_is_sent_as_plotly_would_check_it(page, default_runs):
    """Issue 19: figures are built from plain dicts, unchecked (checking was half of a lesson's
    server time). plotly.js ignores what it cannot read, silently (a title given as a bare string,
    `font_size` inside a dict, a Python-only colour scale name), so every chart a page sends must be
    exactly what Plotly's checking would have made of it."""
    assert_sent_as_plotly_checks_it(default_runs[0][page])


@pytest.mark.parametrize("name", HOSTILE_PROMPTS)
@pytest.mark.parametrize("page", PAGES)
def test_page_survives_hostile_prompts(page, name):
    app = run_page(page, HOSTILE_PROMPTS[name])
    assert_healthy(app)
    for widget in [*app.selectbox, *app.multiselect, *app.radio]:  # pickers show plain text, not Plotly's escapes
        for option in widget.options:
            assert not any(escape in option and escape not in HOSTILE_PROMPTS[name] for escape in ("&lt;", "&gt;", "&amp;")), \
                f"{widget.label}: {option!r}"


def test_tokenization_page_shows_the_prompts_real_tokens(bundled):
    app = run_page(LESSONS[0].page, "The cat sat on the mat")
    chips = " ".join(element.proto.body for element in app.get("html"))
    for token in bundled.tokenizer.convert_ids_to_tokens(bundled.tokenizer("The cat sat on the mat")["input_ids"]):
        assert f">{token}<" in chips
    for token_id in bundled.tokenizer("The cat sat on the mat")["input_ids"]:
        assert f">{token_id}<" in chips
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Characters"] == "22"
    assert metrics["Tokens"] == str(len(bundled.tokenizer("The cat sat on the mat")["input_ids"]))


def test_script_prompt_is_shown_escaped_in_the_chips():
    app = run_page(LESSONS[0].page, SCRIPT)
    chips = " ".join(element.proto.body for element in app.get("html"))
    assert "&lt;" in chips and "<script" not in chips


def test_unknown_figure_slot_becomes_a_visible_warning(tmp_path, monkeypatch):
    import core.lessons as lessons
    (tmp_path / "01_tokenization.md").write_text("---\ntitle: T\nsummary: S\n---\nText\n{{ figure: no-such-figure }}\n")
    for entry in COURSE:  # the other lessons' files, the map's included
        if entry.number != 1:
            (tmp_path / entry.markdown).write_text("---\ntitle: X\nsummary: Y\n---\n")
    (tmp_path / "home.md").write_text((lessons.LESSONS_DIR / "home.md").read_text())
    monkeypatch.setattr(lessons, "LESSONS_DIR", tmp_path)
    app = run_page(LESSONS[0].page)
    assert not app.exception
    assert any("no-such-figure" in w.value for w in app.warning)


def test_prompt_follows_the_student_between_pages():
    app = AppTest.from_file(str(APP_DIR / "Home.py"), default_timeout=60)
    app.run()
    app.text_area(key="prompt_box").input("Tom had a blue kite.").run()
    assert app.session_state["prompt"] == "Tom had a blue kite."
    app.switch_page(LESSONS[0].page).run()
    assert not app.exception
    assert app.text_area(key="prompt_box").value == "Tom had a blue kite."


def lesson_links(app: AppTest) -> dict[str, object]:
    """Home's link to each lesson, by the lesson's page file."""
    return {entry.page: next(link.proto for link in app.get("page_link")
                             if link.proto.label.startswith(f"**{entry.number}. "))
            for entry in LESSONS}


def test_answers_are_kept_between_pages_and_home_shows_progress():
    app = run_page(LESSONS[2].page)  # lesson 3: positional encoding
    questions = load_lesson(LESSONS[2].markdown).questions
    first = questions[0]
    wrong = next(text for text, correct in first.options if not correct)
    app.radio(key="lesson3-question-0").set_value(wrong).run()
    assert [e.value for e in app.error] == ["Not quite."]
    switch_to(app, "Home.py").run()
    links = lesson_links(app)
    total = sum(1 for question in questions if question.options)
    assert f"0 of {total} questions right" in links[LESSONS[2].page].label
    assert links[LESSONS[2].page].icon == ":material/check_circle:"  # visited
    assert links[LESSONS[3].page].icon == ":material/radio_button_unchecked:"  # not yet
    assert "questions right" not in links[LESSONS[0].page].label
    app.switch_page(LESSONS[2].page).run()
    assert app.radio(key="lesson3-question-0").value == wrong  # still picked on coming back
    right = next(text for text, correct in first.options if correct)
    app.radio(key="lesson3-question-0").set_value(right).run()
    assert [e.value for e in app.success] == ["Right."]
    switch_to(app, "Home.py").run()
    links = lesson_links(app)
    assert f"1 of {total} questions right" in links[LESSONS[2].page].label


def test_settings_are_found_again_after_visiting_other_lessons():
    """Streamlit forgets a widget's value when its page is left; the lessons' settings must not be."""
    app = run_page(LESSONS[6].page)  # Training
    text = "A student's own text. " * 120
    app.selectbox(key="t_preset").select("5-minute").run()
    app.radio(key="t_source").set_value("text").run()
    app.text_area(key="t_text").input(text).run()
    app.switch_page(LESSONS[5].page).run()  # Sampling
    app.slider(key="s_temperature").set_value(2.0).run()
    app.slider(key="s_n_tokens").set_value(12).run()
    app.switch_page(LESSONS[3].page).run()  # Attention
    app.segmented_control(key="attn_layer").set_value(2).run()
    app.multiselect(key="attn_ablate").set_value([(0, 0), (0, 3)]).run()
    for page in ("Home.py", LESSONS[0].page, LESSONS[6].page):
        switch_to(app, page).run()
    assert app.selectbox(key="t_preset").value == "5-minute"
    assert app.number_input(key="t_n_layer").value == 4  # the 5-minute preset's, not the 1-minute's 2
    assert app.radio(key="t_source").value == "text" and app.text_area(key="t_text").value == text
    app.switch_page(LESSONS[5].page).run()
    assert app.slider(key="s_temperature").value == 2.0 and app.slider(key="s_n_tokens").value == 12
    app.switch_page(LESSONS[3].page).run()
    assert app.segmented_control(key="attn_layer").value == 2
    assert app.multiselect(key="attn_ablate").value == [(0, 0), (0, 3)]
    assert not app.exception and not app.warning, ([e.value for e in app.exception], [w.value for w in app.warning])


def test_a_prompt_over_the_limit_is_cut_with_one_sentence():
    """Issue 13: a 100,000-character paste was dropped by the box (max_chars) without a word."""
    from course_ui import PROMPT_LIMIT

    pasted = ("The cat sat on the mat. " * 5000)[:100_000]
    app = run_page("Home.py")
    app.text_area(key="prompt_box").input(pasted).run()
    message = f"Prompts are limited to {PROMPT_LIMIT:,} characters: yours has 100,000, so the lessons use its first " \
              f"{PROMPT_LIMIT:,}."
    assert [w.value for w in app.warning] == [message]
    assert app.session_state["prompt"] == pasted[:PROMPT_LIMIT] == app.text_area(key="prompt_box").value
    app.switch_page(LESSONS[0].page).run()
    assert [w.value for w in app.warning].count(message) == 1 and not app.exception  # (and what lesson 1 says)
    app.text_area(key="prompt_box").input("Tom had a kite.").run()
    assert message not in [w.value for w in app.warning] and app.session_state["prompt"] == "Tom had a kite."


def test_a_deployed_course_shows_no_error_details_and_logs_them(capfd):
    """Issue 13: tracebacks showed server file paths. What .streamlit/config.toml sets hides the
    message and the traceback from the student; the server log keeps both."""
    import tomllib

    from streamlit import config

    deployed = tomllib.loads((APP_DIR / ".streamlit" / "config.toml").read_text())["client"]["showErrorDetails"]
    config.set_option("client.showErrorDetails", deployed)
    try:
        app = AppTest.from_string("raise OSError(\"[Errno 36] File name too long: '/srv/course/a'\")").run()
    finally:
        config.set_option("client.showErrorDetails", "full")
    shown = app.exception[0].proto
    assert "/srv/course" not in shown.message and not shown.stack_trace
    log = "".join(capfd.readouterr())
    assert "Traceback" in log and "/srv/course" in log  # the full details are in the server's log


def test_example_button_sets_the_prompt():
    app = run_page("Home.py")
    app.button(key="example-0").click().run()
    assert app.session_state["prompt"] == app.text_area(key="prompt_box").value != ""


def test_unreachable_hub_model_falls_back_with_one_sentence(monkeypatch):
    import core.models as models
    monkeypatch.setattr(models, "hub_reachable", lambda timeout=1.5: False)
    app = run_page("Home.py")
    app.selectbox(key="model_box").select("gpt2").run()
    assert not app.exception
    assert app.session_state["model_key"] == "glassbox-stories"
    warnings = [w.value for w in app.warning]
    assert any("cannot be reached" in w for w in warnings), warnings


def test_pages_leave_the_shared_trace_untouched():
    """Traces are shared by every session (st.cache_resource, like the model): no page may
    change one, even by accident in place."""
    import torch

    from core.cached import cached_trace
    from core.models import DEFAULT_MODEL

    prompt = "Once upon a time, Tom had a blue kite. Tom"
    app = run_page(LESSONS[0].page, prompt)
    trace = cached_trace(DEFAULT_MODEL.key, prompt)  # the very object every page reads
    before = {name: tensor.clone() for name, tensor in trace.tensors.items()}
    for page in PAGES[1:] + ["Home.py"]:
        switch_to(app, page).run()
        assert not app.exception, (page, [e.value for e in app.exception])
        if page == LESSONS[4].page:
            box = app.multiselect(key="ff_ablate")
            box.set_value([tuple(map(int, label.split("."))) for label in box.options[:4]]).run()
    assert cached_trace(DEFAULT_MODEL.key, prompt) is trace
    assert trace.tensors.keys() == before.keys()
    changed = [name for name, tensor in before.items() if not torch.equal(tensor, trace.tensors[name])]
    assert changed == []


def test_feed_forward_page_contributions_sum_to_the_logit_and_ablation_moves_it():
    app = run_page(LESSONS[4].page)  # the default prompt: " Mia", 0.999
    assert not app.exception, [e.value for e in app.exception]
    sums = [c.value for c in app.caption if c.value.startswith("Sum of the bars")]
    assert len(sums) == 1
    numbers = [float(part.rstrip(".")) for part in sums[0].split() if part.rstrip(".").lstrip("-").replace(".", "").isdigit()]
    assert len(numbers) == 2 and abs(numbers[0] - numbers[1]) < 1e-3
    metric_before = [m for m in app.metric if m.label.startswith("log P(")][0].value
    assert not [m for m in app.metric if m.label == "after"]  # nothing ablated yet: no "change" of +0.0000
    assert any(c.value.startswith("Nothing is switched off yet") for c in app.caption)
    box = app.multiselect(key="ff_ablate")
    box.set_value([tuple(map(int, label.split("."))) for label in box.options[:8]]).run()  # layer 0's strongest
    # (on the course model " Mia" falls from 0.999 to 0.989)
    assert not app.exception, [e.value for e in app.exception]
    after = [m for m in app.metric if m.label == "after"][0]
    assert after.value != metric_before
    sigma = [m for m in app.metric if m.label == "σ of the final norm at the last position"][0]
    before, now = (float(x) for x in sigma.value.split(" → "))
    assert now < before  # the stream is shorter without the neurons that push " Mia"


@pytest.fixture(scope="module")
def gpt2_family_folder(tmp_path_factory):
    """A random-weight GPT-2 with GPT-2's real 50,257-token tokenizer and a short context (48),
    saved as a local model folder: what a hub GPT-2 looks like to the app, without the network."""
    from core.tokenization import gpt2_tokenizer
    from tests.conftest import random_gpt2

    folder = tmp_path_factory.mktemp("gpt2-family") / "my <b>gpt2</b> *model*"  # a student names folders
    random_gpt2(n_layer=2, n_head=3, n_embd=48, n_positions=48, vocab_size=50257).save_pretrained(folder)
    gpt2_tokenizer().save_pretrained(folder)
    return str(folder)


def test_a_large_model_is_not_reloaded_at_every_run_of_a_page_that_names_the_course_models_too(
        gpt2_family_folder, monkeypatch):
    """The map's size table names both course models beside the model in use; with one cache of two
    models for all, every rerun evicted and reloaded the large one (~1.2 s of server CPU for GPT-2
    small). The bundled models are kept apart: after the first run, no model is loaded again."""
    import core.cached

    loads = []
    real_load = core.cached.load_model
    monkeypatch.setattr(core.cached, "load_model", lambda key: loads.append(key) or real_load(key))
    app = AppTest.from_file(str(APP_DIR / "Home.py"), default_timeout=90)
    app.session_state["model_key"] = gpt2_family_folder
    app.run()
    app.switch_page("lesson_pages/0_The_model_map.py").run()
    assert not app.exception, [e.value for e in app.exception]
    loads.clear()
    for _ in range(2):
        app.run()
    assert loads == []


@pytest.mark.parametrize("page", [p for p in PAGES if p != "Home.py"])
@pytest.mark.parametrize("prompt", ["default", "5000-characters", "emoji"])
def test_lesson_pages_run_on_another_gpt2_family_model(page, prompt, gpt2_family_folder):
    app = AppTest.from_file(str(APP_DIR / "Home.py"), default_timeout=90)
    app.session_state["model_key"] = gpt2_family_folder
    if prompt != "default":
        app.session_state["prompt"] = HOSTILE_PROMPTS[prompt]
    app.run()
    app.switch_page(page).run()
    assert not app.exception, [e.value for e in app.exception]
    from core.figures import md_escape

    assert any(md_escape(gpt2_family_folder) in c.value for c in app.sidebar.caption)  # really on the folder model
    assert not app.error
    assert_healthy(app)


@pytest.fixture(scope="module")
def deep_folder(tmp_path_factory):
    """gpt2-medium's shape (24 layers of 16 heads) at a tiny width: every per-layer and per-head
    figure at its largest count, as a student who picks gpt2-medium on Cloud would see it."""
    from core.tokenization import gpt2_tokenizer
    from tests.conftest import random_gpt2

    folder = tmp_path_factory.mktemp("deep") / "deep"
    random_gpt2(n_layer=24, n_head=16, n_embd=64, n_positions=64, vocab_size=50257).save_pretrained(folder)
    gpt2_tokenizer().save_pretrained(folder)
    return str(folder)


def test_a_student_picks_a_model_folder_through_the_picker(gpt2_family_folder):
    app = run_page("Home.py")
    app.selectbox(key="model_box").select("local-folder").run()
    assert app.selectbox(key="model_box").value == "local-folder"  # stays on the folder choice
    assert app.session_state["model_key"] == "glassbox-stories"  # nothing loaded yet
    hostile_path = "/no/<img src=x onerror=alert(1)>/**bold**/[link](javascript:alert(2))"
    app.text_input(key="local_folder").input(hostile_path).run()
    assert app.selectbox(key="model_box").value == "local-folder"  # the box stays open to fix the path
    assert app.session_state["model_key"] == "glassbox-stories" and app.warning
    assert md_escape(hostile_path) in app.warning[0].value  # shown as typed, neither HTML nor markdown
    assert_healthy(app)
    app.text_input(key="local_folder").input(gpt2_family_folder).run()
    assert not app.exception, [e.value for e in app.exception]
    assert app.session_state["model_key"] == gpt2_family_folder
    assert any("In use:" in c.value and "vocabulary 50,257" in c.value for c in app.caption)
    app.switch_page(LESSONS[3].page).run()  # the lessons use it
    assert not app.exception and app.selectbox(key="model_box").value == "local-folder"
    app.selectbox(key="model_box").select("glassbox-stories").run()  # and back
    assert app.session_state["model_key"] == "glassbox-stories"
    assert app.selectbox(key="model_box").value == "glassbox-stories"


@pytest.mark.parametrize("page", [p for p in PAGES if p != "Home.py"])
def test_lesson_pages_run_on_a_model_as_deep_as_gpt2_medium(page, deep_folder):
    app = AppTest.from_file(str(APP_DIR / "Home.py"), default_timeout=90)
    app.session_state["model_key"] = deep_folder
    app.run()
    app.switch_page(page).run()
    assert not app.exception, [e.value for e in app.exception]
    assert not app.error
    assert_healthy(app)


def numbers_in(text: str) -> list[float]:
    import re
    return [float(x) for x in re.findall(r"-?\d+\.\d+", text.replace("−", "-"))]


def test_sampling_page_controls_generation_and_journey(bundled):
    import torch

    app = run_page(LESSONS[5].page, "The cat sat on the")
    assert not app.exception, [e.value for e in app.exception]
    table = app.dataframe[0].value
    assert table.iloc[0]["token"] == "␣mat" and table["probability"].is_monotonic_decreasing
    app.slider(key="s_temperature").set_value(0.0).run()  # greedy: no NaN, the argmax is drawn
    app.number_input(key="s_top_k").set_value(1).run()
    assert not app.exception, [e.value for e in app.exception]
    assert any("**1** token(s) survive" in m.value for m in app.markdown)
    assert any("Drawn (greedy" in m.value and "␣mat" in m.value for m in app.markdown)
    app.slider(key="s_temperature").set_value(5.0).run()
    app.number_input(key="s_top_k").set_value(0).run()
    assert not app.exception, [e.value for e in app.exception]

    app.slider(key="s_n_tokens").set_value(12).run()
    app.button(key="s_generate").click().run()
    assert not app.exception, [e.value for e in app.exception]
    codes = [c.value for c in app.code]
    ids = bundled.tokenizer("The cat sat on the")["input_ids"]
    greedy = bundled.model.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=12, min_new_tokens=12,
                                    top_k=None, top_p=None, pad_token_id=0)[0, len(ids):].tolist()
    assert bundled.tokenizer.decode(greedy) in codes  # the greedy column equals Hugging Face's greedy generate
    again = AppTest.from_file(str(APP_DIR / "Home.py"), default_timeout=60)
    again.session_state["prompt"] = "The cat sat on the"
    again.run()
    again.switch_page(LESSONS[5].page).run()
    again.slider(key="s_temperature").set_value(5.0).run()
    again.number_input(key="s_top_k").set_value(0).run()
    again.slider(key="s_n_tokens").set_value(12).run()
    again.button(key="s_generate").click().run()
    assert [c.value for c in again.code] == codes  # same seed and settings: same text, in a new session

    journey = [c.value for c in app.caption if c.value.startswith("Raises − lowers")][0]
    difference, logit = numbers_in(journey)
    assert difference == pytest.approx(logit, abs=1e-3)


def start_a_small_copy_run(app: AppTest):
    """On lesson 7's page: the copy task, characters, a one-layer model for 20,000 steps; Start.
    Returns the run the page started."""
    app.radio(key="t_source").set_value("copy").run()
    app.radio(key="t_tokenizer").set_value("bytes").run()
    app.selectbox(key="t_preset").set_value("custom").run()
    for knob, value in {"t_n_layer": 1, "t_n_embd": 32, "t_n_head": 2, "t_block_size": 32, "t_batch_size": 8,
                        "t_max_steps": 20_000}.items():
        app.number_input(key=knob).set_value(value).run()
    app.button(key="t_start").click().run()
    assert not app.exception, [e.value for e in app.exception]
    return app.session_state["t_run"]


def test_training_page_starts_a_run_shows_it_learning_and_stops_it():
    app = run_page(LESSONS[6].page)
    assert not app.exception, [e.value for e in app.exception]
    assert any(m.label == "Parameters" for m in app.metric) and any(m.label == "Tokens per character" for m in app.metric)
    assert any(d.value.columns[-1].startswith("after = before") for d in app.dataframe)  # the frozen step
    run = start_a_small_copy_run(app)
    assert wait_for(lambda: run.view().step > 0 and run.view().copy_scores)  # it trains, and the copy test scored
    app.run()
    assert run.status == "running" and run.view().step > 0
    charts = {c.proto.id.split("-")[-1] for c in app.get("plotly_chart")}
    assert any("t_loss" in c.proto.id for c in app.get("plotly_chart"))
    assert any("t_lr" in c.proto.id for c in app.get("plotly_chart")), charts
    assert any("t_copy" in c.proto.id for c in app.get("plotly_chart")), charts  # the copy test, scored live
    assert any(c.value.startswith("At step") and "copied tokens" in c.value for c in app.caption)
    app.button(key="t_pause").click().run()
    assert run.status == "paused"
    app.button(key="t_resume").click().run()
    assert run.status == "running"
    token = app.query_params["run"]  # the address names the run, so that a reload finds it again
    reloaded = AppTest.from_file(str(APP_DIR / "Home.py"), default_timeout=90)  # a reload: a new session, same address
    reloaded.query_params["run"] = token
    reloaded.run()
    assert not reloaded.exception and reloaded.session_state["t_run"] is run and reloaded.query_params["run"] == token
    reloaded.switch_page(LESSONS[6].page).run()
    assert not reloaded.exception and any("t_loss" in c.proto.id for c in reloaded.get("plotly_chart"))
    stranger = AppTest.from_file(str(APP_DIR / "Home.py"), default_timeout=90)
    stranger.query_params["run"] = "a-guessed-token"
    stranger.run()
    assert not stranger.exception and stranger.session_state["t_run"] is None and "run" not in stranger.query_params
    app.button(key="t_stop").click().run()
    assert run.status == "stopped"
    assert not app.exception, [e.value for e in app.exception]
    assert any(b.proto.label.startswith("Download the model") for b in app.get("download_button"))
    app.button(key="t_use").click().run()  # the model the student trained, in every lesson's picker
    assert not app.exception, [e.value for e in app.exception]
    folder = str(run.save())
    assert app.session_state["model_key"] == folder
    app.switch_page(LESSONS[3].page).run()
    assert not app.exception, [e.value for e in app.exception]
    assert app.selectbox(key="model_box").value == folder
    assert any("Your trained model" in o for o in app.selectbox(key="model_box").options)
    assert not any(c.value.startswith("Using **glassbox") for c in app.sidebar.caption)
    # named by its label, not by the server folder it was saved in (a hostile-student pass)
    assert [c.value for c in app.sidebar.caption if c.value.startswith("Using")] == [
        f"Using **{md_escape(app.session_state['trained_models'][folder])}**"]


def test_training_page_refuses_bad_text_with_a_message():
    app = run_page(LESSONS[6].page)
    app.radio(key="t_source").set_value("text").run()
    assert [w.value for w in app.warning] == ["The text is empty."]  # once, not once per figure
    app.text_area(key="t_text").set_value("far too short").run()
    assert not app.exception, [e.value for e in app.exception]
    assert [w.value.split(",")[0] for w in app.warning] == ["Your text has 13 characters"]


def english(characters: int) -> str:
    from core.corpus import generate_stories

    return " ".join(story.text for story in generate_stories(40, 5))[:characters]


@pytest.mark.parametrize("preset, tokenizer, short, enough", [
    ("1-minute", "bpe", 1_500, 2_500), ("5-minute", "bpe", 3_000, None), ("5-minute", "bytes", 1_000, None)])
def test_training_page_says_once_and_for_good_why_a_text_is_too_short(preset, tokenizer, short, enough):
    """Issue 13 A: English text longer than the old stated minimum did nothing on Start, silently.
    (That the page's minimum is the trainer's for every preset and tokenizer: test_live_training.py.)"""
    from core.live_training import PRESETS, tokens_needed

    app = run_page(LESSONS[6].page)
    app.radio(key="t_source").set_value("text").run()  # first: no timing of steps on the stories
    app.radio(key="t_tokenizer").set_value(tokenizer).run()
    app.selectbox(key="t_preset").select(preset).run()
    need = tokens_needed(PRESETS[preset])
    assert f"long enough for {need:,} training and {need:,} validation tokens" in app.text_area(key="t_text").label
    app.text_area(key="t_text").input(english(short)).run()
    warnings = [w.value for w in app.warning]
    assert len(warnings) == 1 and warnings[0].startswith(f"Your text has {short:,} characters"), warnings
    assert f"at least {need:,} of each" in warnings[0]
    assert app.button(key="t_start").disabled  # Start cannot do nothing silently any more
    app.run()  # the sentence stays (it was wiped by an immediate rerun)
    assert [w.value for w in app.warning] == warnings and "t_run" not in app.session_state
    if enough is None:
        return
    app.text_area(key="t_text").input(english(enough)).run()
    assert not app.warning and not app.button(key="t_start").disabled
    app.button(key="t_start").click().run()
    assert not app.exception, [e.value for e in app.exception]
    run = app.session_state["t_run"]
    assert run.config.block_size == PRESETS[preset].block_size
    run.stop()
    run.wait(timeout=30)


def test_training_page_says_when_a_run_waits_for_the_machine():
    from core.training_run import TRAINING_SLOTS

    assert TRAINING_SLOTS.acquire(-1, timeout=30)  # another student's run holds every slot
    try:
        for extra in range(2, TRAINING_SLOTS.count + 1):
            TRAINING_SLOTS.acquire(-extra, timeout=30)
        app = run_page(LESSONS[6].page)
        app.number_input(key="t_max_steps").set_value(20_000).run()
        app.button(key="t_start").click().run()
        run = app.session_state["t_run"]
        assert run.view().waiting == 1 and run.view().step == 0
        assert any("Waiting for the machine" in i.value and "number 1 in the queue" in i.value for i in app.info)
    finally:
        for holder in range(1, TRAINING_SLOTS.count + 1):
            TRAINING_SLOTS.release(-holder)
    assert wait_for(lambda: run.view().step > 0)
    app.run()
    assert run.view().step > 0 and not any("Waiting for the machine" in i.value for i in app.info)
    app.button(key="t_stop").click().run()
    assert run.status == "stopped"


def test_fitted_margins_hold_the_labels_colour_bar_and_legend_and_never_shrink():
    """Issue 19: a chart whose margins Plotly's automargin widens is drawn twice;
    core.plot_style.finished works them out beforehand from the figure's own labels."""
    import plotly.graph_objects as go

    from core import figures
    from core.plot_style import CHAR_PX, COLOUR_BAR_PX, EDGE_PX, TITLE_PX, finished

    long_label = "a token with a long name"
    heat = finished(figures.heatmap([[1.0, 2.0], [3.0, 4.0]], ["x1", "x2"], ["short", long_label], "t", "key", "query"))
    assert heat.layout.margin.l >= len(long_label) * CHAR_PX + 26  # the longest row label and the axis title
    assert heat.layout.margin.r >= COLOUR_BAR_PX - 20  # the colour bar
    lines = finished(figures.lines([1, 2], {"first series": [1, 2], "second, with a longer name": [2, 1]},
                                      "t", "x", "y"))
    assert lines.layout.margin.r >= len("second, with a longer name") * CHAR_PX  # the legend at the side
    flat = go.Figure(go.Scatter(x=[1, 2], y=[1, 2], name="one"), layout=dict(margin=dict(l=300, r=5, b=5, t=5)))
    assert finished(flat).layout.margin.l == 300 and flat.layout.margin.t == 5  # never narrowed; the top untouched
    only_x_set = finished(go.Figure(go.Bar(x=["a", "b"], y=[1.5, 2.5]), layout=dict(xaxis=dict(type="category"))))
    assert only_x_set.layout.margin.l >= 5 * CHAR_PX  # the y axis' numbers, though the layout names no y axis
    upright = finished(go.Figure(go.Bar(x=[f"label number {i}" for i in range(40)], y=list(range(40)))))
    assert upright.layout.margin.b >= len("label number 10") * CHAR_PX  # many long x labels stand upright
    # 16 four-digit labels lie flat across a whole plot, but stand upright across one of two panels
    # (GPT-2 small's neurons in lesson 5: its chart was drawn twice)
    neurons = [str(3000 + i) for i in range(16)]
    panels = finished(figures.heatmap_panels([([[1.0] * 16], "before"), ([[2.0] * 16], "after")], neurons, ["p"], "t",
                                             "neuron"))
    assert panels.layout.margin.b >= EDGE_PX + 4 * CHAR_PX + TITLE_PX


def test_a_layer_or_head_picker_offers_every_index_in_one_click_and_forgets_one_the_model_lacks():
    """Issue 19: a layer or head is one click on a row of numbered buttons (no list to open first).
    GPT-2 small's 12 heads do not fit one row of a half-width column: the row wraps (without it,
    Chromium cut the row after head 10, and head 11 could not be picked). A head kept from a model
    with more heads goes back to 0."""
    app = AppTest.from_string("import streamlit as st, course_ui\n"
                              "course_ui.index_picker('Head', st.session_state.heads, 'attn_head')", default_timeout=30)
    app.session_state["heads"], app.session_state["attn_head"] = 12, 11
    app.run()
    picker = app.segmented_control(key="attn_head")
    assert picker.value == 11 and picker.options == [str(h) for h in range(12)]
    assert picker.proto.wrap and picker.proto.required  # every head on screen; one is always picked
    picker.set_value(3).run()
    assert app.session_state["attn_head"] == 3
    app.session_state["attn_head"], app.session_state["heads"] = 11, 4  # another model, with 4 heads
    app.run()
    assert app.segmented_control(key="attn_head").value == 0 and not app.exception
    app.session_state["attn_head"] = None  # a row that lost its choice (seen under load on lesson 7: TypeError)
    app.run()
    assert app.segmented_control(key="attn_head").value == 0 and not app.exception


def test_the_attention_page_survives_a_layer_or_head_picker_that_lost_its_choice():
    """The pages' own reading of the picked layer and head (course_ui.layer_head_state) takes a
    missing choice as 0, as the picker does."""
    app = run_page(LESSONS[3].page)
    app.session_state["attn_layer"], app.session_state["attn_head"] = None, None
    app.run()
    assert_healthy(app)
    assert (app.session_state["attn_layer"], app.session_state["attn_head"]) == (0, 0)


def test_a_long_numbered_axis_is_ticked_at_round_numbers_and_tokens_keep_one_tick_each():
    """Issue 19: a heatmap of a vector's 128 entries on a category axis made the browser measure 128
    labels, which tripled the heatmap's drawing time; such an axis is a number line (0, 50, 100).
    Tokens, neuron ids in activity order, and a head's 8 entries keep one labelled tick each."""
    from core import figures

    entries, tokens = list(range(128)), ["Once", "␣upon", "␣a"]
    wide = figures.heatmap([[0.5] * 128] * 3, entries, tokens, "t", "entry", "position")
    assert (wide.layout.xaxis.type, wide.layout.yaxis.type) == ("linear", "category")
    assert list(wide.data[0].x) == entries  # the bricks sit on the entry numbers themselves
    positions = figures.heatmap_panels([([[0.0] * 128] * 128, "a"), ([[1.0] * 128] * 128, "b")], entries, entries, "t")
    assert {positions.layout[axis].type for axis in ("xaxis", "yaxis", "xaxis2", "yaxis2")} == {"linear"}
    short = figures.heatmap([[0.5] * 8], list(range(8)), tokens[:1], "t")
    neurons = figures.heatmap([[0.5] * 30], [str(n) for n in range(300, 330)], tokens[:1], "t")
    assert short.layout.xaxis.type == neurons.layout.xaxis.type == "category"


def test_a_finished_figure_hands_streamlit_the_dict_of_what_it_holds_made_once():
    """Issue 19: Streamlit asks for a figure's dict at every draw (Plotly deep-copies the figure for
    it); a finished figure answers with the one made when it was finished, which must be the dict
    of the figure as it stands, its fitted margins included."""
    import plotly.graph_objects as go

    from core import figures
    from core.plot_style import finished

    figure = finished(figures.sweep_lines([0.1, 1.0, 5.0], {"a": [1.0, 2.0, 3.0], "b": [3.0, 2.0, 1.0]}, "t", "p",
                                          marker=2.0, reference=("uniform", 1.5)))
    assert figure.to_dict() is figure.to_dict()
    assert figure.to_dict() == go.Figure(data=figure.data, layout=figure.layout).to_dict()
    assert figure.to_dict()["layout"]["margin"]["r"] >= 64  # the legend's room, in what is drawn
    assert [s["y0"] for s in figure.to_dict()["layout"]["shapes"] if s["yref"] == "y"] == [1.5]


def test_the_sweep_labels_its_temperature_marker_where_the_line_is_on_the_log_axis():
    """Lesson 6: the slider's temperature is marked on the log-scale sweeps; the label's x is in the
    axis' log10 units (given as the value, it stood at T = 10, off the plot, and did not show)."""
    import math

    from core import figures

    figure = figures.sweep_lines([0.1, 1.0, 5.0], {"a": [1.0, 2.0, 3.0]}, "t", "p", marker=2.0)
    label = next(a for a in figure.layout.annotations if a.text == "T = 2")
    assert label.x == pytest.approx(math.log10(2.0)) and figure.layout.shapes[0].x0 == 2.0


def test_a_guess_longer_than_the_context_keeps_its_first_token_s_rank_and_says_what_was_cut(bundled):
    """A hostile-student pass: 60 emoji (241 tokens, more than the course model's 128) ranked their
    first token 539th; 20 emoji, whose first token is the same, 307th. Both now read the prompt as
    the candidates do, and the page says what the whole-word figure leaves out."""
    app = run_page(LESSONS[5].page, "Once upon a time, there was a")
    ranks = {}
    for count in (20, 60):
        app.text_input(key="s_guess").input("🙂" * count).run()
        assert not app.exception, [e.value for e in app.exception]
        ranks[count] = next(m.value for m in app.metric if m.label == "Rank of its first token")
        cut = [c.value for c in app.caption if c.value.startswith("Prompt and guess together are longer")]
        assert bool(cut) == (count == 60), cut
    assert ranks[20] == ranks[60]
    assert "only its first 127 tokens are scored" in cut[0]
    assert next(m.value for m in app.metric if m.label == "P(whole word)").startswith("log P = ")


def test_lesson_6_shows_one_entropy_at_t_1_and_counts_every_prompt_token_generation_leaves_out(bundled):
    """A hostile-student pass: at T = 1 "Entropy at T = 1" stood twice side by side; and with a
    prompt of 300 tokens, Generate said 50 prompt tokens were left out, when 222 were (172 cut to
    fit the context before the lesson, then 50 more to make room for 50 new tokens)."""
    app = run_page(LESSONS[5].page, " the" * 300)
    assert [m.label for m in app.metric if m.label.startswith("Entropy at")] == ["Entropy at T = 1"]
    app.slider(key="s_temperature").set_value(2.0).run()
    assert [m.label for m in app.metric if m.label.startswith("Entropy at")] == ["Entropy at T = 1", "Entropy at T = 2"]
    app.slider(key="s_n_tokens").set_value(50).run()
    app.button(key="s_generate").click().run()
    assert not app.exception, [e.value for e in app.exception]
    assert [c.value for c in app.caption if "were left out" in c.value] == [
        "The first 222 of your prompt's 300 tokens were left out so that prompt and continuation fit the model's "
        "context of 128 tokens."]


def test_no_figure_reads_minus_zero(bundled):
    """A hostile-student pass: "Left out …: -0% of the attention" (lesson 4, prompt "🙂", layer 3,
    head 3) and "mean after normalising -0.0000" (lesson 5): rounding's sign, not a number."""
    app = run_page(LESSONS[3].page, "🙂")
    app.segmented_control(key="attn_layer").set_value(3)
    app.segmented_control(key="attn_head").set_value(3).run()
    left_out = [c.value for c in app.caption if c.value.startswith("Left out")]
    assert left_out and not any("-0%" in c for c in left_out), left_out
    app = run_page(LESSONS[4].page, "Once upon a time, there was a little cat named Tom.")
    mean = [m.value for m in app.metric if m.label == "mean after normalising"]
    assert mean == ["0.0000"], mean


def test_choices_of_a_position_or_a_neuron_start_again_on_a_new_prompt(bundled):
    """A hostile-student pass: the neuron picker ("starts at the most active neuron of the layer on
    your prompt") kept the old prompt's neuron after the prompt changed, and the query and position
    pickers kept their index (3 of 13) when the prompt grew. Kept while the prompt stays."""
    from core import residual
    from core.cached import cached_trace

    first, second = "Once upon a time, there was a little cat named Tom.", "The dog ran to the park and found a big red ball."
    app = run_page(LESSONS[4].page, first)
    layer = app.session_state["ff_layer"]
    app.selectbox(key=f"ff_neuron_{layer}").set_value(5).run()
    app.selectbox(key="ff_position").set_value(3).run()
    app.run()  # the same prompt: the choices stay
    assert (app.selectbox(key=f"ff_neuron_{layer}").value, app.selectbox(key="ff_position").value) == (5, 3)
    app.session_state["prompt"] = second
    app.run()
    trace = cached_trace("glassbox-stories", second)
    assert app.selectbox(key=f"ff_neuron_{layer}").value == residual.most_active_neurons(trace, layer, 1)[0]
    assert app.selectbox(key="ff_position").value == trace.n_tokens - 1
    app = run_page(LESSONS[3].page, first)
    app.selectbox(key="attn_query").set_value(3).run()
    app.session_state["prompt"] = first + " " + second
    app.run()
    assert app.selectbox(key="attn_query").value == cached_trace("glassbox-stories", first + " " + second).n_tokens - 1


def test_repeat_my_prompt_keeps_to_the_prompt_limit_and_says_so(bundled):
    """A hostile-student pass: lesson 4's "Repeat my prompt" made a 15,300-character prompt into one
    of 30,599, past the 20,000 the box allows, without a word."""
    from core.induction import repeated_prompt
    from course_ui import PROMPT_LIMIT

    prompt = ("Once upon a time, there was a girl named Mia. " * 400)[:15_300]
    repeated = len(repeated_prompt(prompt))
    assert repeated > PROMPT_LIMIT
    app = run_page(LESSONS[3].page, prompt)
    app.button(key="attn-repeat").click().run()
    assert not app.exception, [e.value for e in app.exception]
    assert len(app.session_state["prompt"]) == PROMPT_LIMIT
    said = [element.value for element in (*app.warning, *app.info, *app.caption) if "Prompts are limited" in element.value]
    assert said == [f"Prompts are limited to {PROMPT_LIMIT:,} characters: yours has {repeated:,}, so the lessons use "
                    f"its first {PROMPT_LIMIT:,}."], said


def test_an_apostrophe_in_a_prompt_or_a_guess_shows_as_an_apostrophe(bundled):
    """A hostile-student pass: lesson 6's guess "don't" was shown as "don&#x27;t is 4 token(s): … + `&#x27;` +
    …", and lesson 1's merges likewise (core.figures.md_escape; tests/test_properties.py has the rule)."""
    from tests.test_properties import markdown_shows

    app = run_page(LESSONS[5].page, "Tom's ball")
    app.text_input(key="s_guess").input("don't").run()
    [said] = [markdown_shows(m.value) for m in app.markdown if "token(s) for this model" in m.value]
    assert said.startswith("␣don't is ") and "&#" not in said, said
    app = run_page(LESSONS[0].page, "Tom's ball")
    shown = " ".join(markdown_shows(m.value) for m in (*app.markdown, *app.caption))
    assert "'s" in shown and "&#x27;" not in shown


def test_repeat_my_prompt_waits_for_a_prompt_with_words(bundled):
    """It made a prompt of only spaces into one space ("   ".rstrip() + " " + "   ".strip())."""
    for prompt, can_repeat in (("   ", False), ("\n\n", False), ("a", True)):
        app = run_page(LESSONS[3].page, prompt)
        assert app.button(key="attn-repeat").disabled is not can_repeat, repr(prompt)


def test_lessons_1_to_3_neither_keep_a_stale_verdict_nor_compare_a_prompt_with_itself_nor_read_minus_zero(bundled):
    """A third hostile-student pass: lesson 1 still said "you guessed 5 (39 too few)" with 40 in the
    box; lesson 3's shuffle of "a b c" (seed 0) gave the prompt back unchanged and reported changes of
    0.00e+00 with no word; lesson 2 showed the cosine of " girl" and " forest" as -0.0000."""
    app = run_page(LESSONS[0].page, "The cat sat on the mat.")
    app.number_input(key="predict_guess").set_value(5).run()
    app.button(key="predict_check").click().run()
    assert any("you guessed 5" in m.value for m in app.markdown)
    app.number_input(key="predict_guess").set_value(40).run()
    assert not any("you guessed" in m.value for m in app.markdown)
    assert any(c.value.startswith("Commit to a number first") for c in app.caption)
    app = run_page(LESSONS[2].page, "a b c")
    app.radio(key="pos_how").set_value("shuffle").run()
    assert any(c.value.startswith("This order gives the prompt back as it was") for c in app.caption)
    assert not any(m.value == "Reordered prompt:" for m in app.markdown)
    from core import positions
    from core.cached import cached_trace

    ids = cached_trace("glassbox-stories", "a b c").token_ids
    moving = next(seed for seed in range(1, 50) if [ids[i] for i in positions.reordered(ids, "shuffle", seed)] != ids)
    app.number_input(key="pos_seed").set_value(moving).run()  # a seed that moves them: the experiment runs
    assert any(m.value == "Reordered prompt:" for m in app.markdown)
    assert not any(c.value.startswith("This order gives") for c in app.caption)
    app = run_page(LESSONS[1].page, "Once upon a time")
    app.text_input(key="emb_first").input(" girl")
    app.text_input(key="emb_second").input(" forest").run()
    assert [m.value for m in app.metric if m.label == "Cosine similarity of the two"] == ["0.0000"]


def test_clearing_one_compare_box_keeps_the_other_box_and_its_token(bundled):
    """A third hostile-student pass: clearing lesson 2's first box stopped the view before the
    second box was drawn, and Streamlit then forgot what was typed in it (" cat" became " she")."""
    app = run_page(LESSONS[1].page, "Once upon a time")
    app.text_input(key="emb_second").input(" cat").run()
    app.text_input(key="emb_first").input("").run()
    assert [t.value for t in app.text_input if t.key == "emb_second"] == [" cat"]
    assert not [m for m in app.metric if m.label == "Cosine similarity of the two"]
    app.text_input(key="emb_first").input(" dog").run()
    assert app.text_input(key="emb_second").value == " cat"
    assert [m.label for m in app.metric if m.label == "Cosine similarity of the two"]


def test_two_tokens_that_point_the_same_way_explain_why_they_share_no_neighbours(bundled):
    """A third hostile-student pass: "   " against "x" showed a cosine of 1.0000 and "Shared
    neighbours: none", a contradiction on its face: each neighbour list is a tie at 0.99999."""
    from core.cached import cached_nearest_neighbours

    app = run_page(LESSONS[1].page, "Once upon a time")
    app.text_input(key="emb_first").input("   ")
    app.text_input(key="emb_second").input("x").run()
    assert [m.value for m in app.metric if m.label == "Cosine similarity of the two"] == ["1.0000"]
    [said] = [c.value for c in app.caption if c.value.startswith("Shared neighbours")]
    assert "ties, broken arbitrarily" in said
    from core.cached import cached_model
    from core.tokenization import prompt_tokens

    [x] = prompt_tokens(cached_model("glassbox-stories").tokenizer, "x")
    nearest = [similarity for _, similarity in cached_nearest_neighbours("glassbox-stories", x.id)]
    assert max(nearest) - min(nearest) < 1e-4  # the claim: a tie
    app.text_input(key="emb_second").input(" she").run()
    assert not any("ties" in c.value for c in app.caption if c.value.startswith("Shared neighbours"))


def test_a_link_to_a_model_that_cannot_load_says_so_at_once_and_home_names_only_a_model_in_use(tmp_path, monkeypatch):
    """A hostile-student pass on the address's ?model=: a model that could not load fell back to the
    course model without a word (the sentence came one run late, after the picker was drawn); Home
    named a folder holding only a config.json "In use", crashed on a config.json saying n_layer
    "lots", and, served to others, told a folder that exists from one that does not by its sizes."""
    import shutil

    from core import models
    from tests.test_properties import markdown_shows

    only_config, bad_config, missing = tmp_path / "only-config", tmp_path / "bad-config", tmp_path / "missing"
    only_config.mkdir()
    bad_config.mkdir()
    shutil.copy(models.BUNDLED_MODEL_DIR / "config.json", only_config / "config.json")
    (bad_config / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_layer": "lots"}))

    def opened(folder, page: str) -> tuple[list[str], str]:
        """The warnings of the first view of `page` by a link naming `folder`, and what it says is in use."""
        app = AppTest.from_file(str(APP_DIR / "Home.py"), default_timeout=60)
        app.query_params["model"] = str(folder)
        if page != "Home.py":
            app.switch_page(page)
        app.run()
        assert not app.exception, [e.value for e in app.exception]
        assert app.session_state["model_key"] == models.DEFAULT_MODEL.key and "model" not in app.query_params
        in_use = [markdown_shows(c.value) for c in app.caption
                  if c.value.startswith(("In use:", "Using "))]
        return [markdown_shows(w.value) for w in app.warning], " ".join(in_use)

    for folder in (only_config, bad_config, missing):
        for page in ("Home.py", LESSONS[0].page):
            warned, in_use = opened(folder, page)
            assert len(warned) == 1 and warned[0].endswith("The course carries on with the bundled course model."), warned
            assert str(folder) not in in_use and models.DEFAULT_MODEL.key in in_use, in_use
    monkeypatch.setenv("GLASSBOX_HOSTED", "1")
    answers = {opened(folder, "Home.py")[0][0].replace(str(folder), "PATH") for folder in (only_config, missing)}
    assert answers == {"No model could be loaded from “PATH”. The course carries on with the bundled course model."}


def test_lesson_5_s_activation_curve_draws_the_real_values_of_a_bounded_number_of_points():
    """Issue 19: every point of the GELU plot is an element the browser draws (64 neurons at every
    position made 8,000 on a long prompt and most of lesson 5's drawing time). It draws the 16 most
    active neurons at the last 64 positions, says so in its title, and each point is the trace's own
    (before, after) pair."""
    import re

    from core import residual
    from core.cached import cached_trace
    from core.models import DEFAULT_MODEL

    page = (APP_DIR / "lesson_pages" / "5_Feed_forward.py").read_text()  # the page's own numbers (a script: not imported)
    neurons_shown, positions_shown = (int(re.search(rf"^{name} = (\d+)", page, re.M).group(1))
                                      for name in ("CURVE_NEURONS", "CURVE_POSITIONS"))
    prompt = "Once upon a time, there was a girl named Mia. She liked to play with her red ball. " * 8
    trace = cached_trace(DEFAULT_MODEL.key, prompt)
    assert trace.n_tokens > positions_shown  # the prompt is longer than what is drawn
    app = run_page("lesson_pages/5_Feed_forward.py", prompt)
    assert not app.exception, [e.value for e in app.exception]
    curve = next(json.loads(c.proto.spec) for c in app.get("plotly_chart")
                 if "with your prompt's values" in json.loads(c.proto.spec)["layout"]["title"]["text"])
    title = curve["layout"]["title"]["text"]
    assert f"{neurons_shown} most active neurons, last {positions_shown} positions" in title
    layer = int(title.split("(layer ")[1].split(",")[0])
    neurons = residual.most_active_neurons(trace, layer, neurons_shown)
    before = trace["mlp_pre", layer][-positions_shown:, neurons]  # [positions_shown, neurons_shown]
    points = curve["data"][1]
    assert len(points["text"]) == positions_shown * neurons_shown
    np.testing.assert_allclose(sent_array(points["x"]), before.flatten().numpy(), rtol=1e-5, atol=1e-6)
    after = residual.activation_of(before, trace.arch.activation)
    np.testing.assert_allclose(sent_array(points["y"]), after.flatten().numpy(), rtol=1e-5, atol=1e-6)
