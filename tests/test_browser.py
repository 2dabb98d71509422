"""A real browser: headless Chromium against `streamlit run Home.py`.

Without Debian's chromium these tests are skipped, with the reason and the install line;
`.ci/run` sets GLASSBOX_REQUIRE_BROWSER=1, which turns that skip into a failure there. The app
server is shared by all browser tests (`app_url` in tests/conftest.py); each test opens its own
browser (`page`).
"""
from __future__ import annotations

import re

import pytest

from core.course import COURSE, LESSONS
from core.flows import HOVER_POINTS
from core.lessons import load_lesson
from core.model_map import build_map
from core.models import load_model
from core.tokenization import prompt_tokens
from tests import streamlit_server
from tests.streamlit_server import ARTIFACTS, REQUIRE_BROWSER, no_errors, pick_index, require_browser, start_training_run, wait_until_idle

PROMPT = "The cat sat on the mat."


def test_a_missing_browser_is_a_skip_that_says_how_to_install_it_and_a_failure_where_required(monkeypatch):
    monkeypatch.setattr(streamlit_server, "chromium_path", lambda: None)
    monkeypatch.delenv(REQUIRE_BROWSER, raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install chromium"):
        require_browser()
    monkeypatch.setenv(REQUIRE_BROWSER, "1")
    with pytest.raises(pytest.fail.Exception, match="apt-get install chromium"):
        require_browser()


def test_enter_a_prompt_on_home_and_see_its_tokens(app_url, page):
    ARTIFACTS.mkdir(exist_ok=True)
    page.goto(app_url)
    page.get_by_text("The lessons").first.wait_for(timeout=60_000)
    wait_until_idle(page)
    no_errors(page)
    # Home loads the lessons' chart, table and code elements while it is read (issue 19), out of sight
    early = page.locator(".st-key-glassbox-early-elements")
    for element in (".js-plotly-plot", '[data-testid="stDataFrame"]', '[data-testid="stCode"]'):
        early.locator(element).wait_for(state="attached", timeout=30_000)
    assert not early.is_visible()
    box = page.get_by_role("textbox", name="Your prompt")
    box.fill(PROMPT)
    box.press("Control+Enter")
    wait_until_idle(page)
    page.get_by_role("button", name=f"Start with {COURSE[0].title.lower()}").click()  # the course starts at its map
    page.get_by_text(f"Lesson 0 · {COURSE[0].title}").first.wait_for(timeout=60_000)
    wait_until_idle(page)
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=LESSONS[0].title, exact=True).click()
    page.locator(".gb-chip").first.wait_for(timeout=60_000)
    wait_until_idle(page)
    assert page.get_by_role("textbox", name="Your prompt").input_value() == PROMPT
    chips = page.locator(".gb-chips").first.locator(".gb-tok").all_inner_texts()
    expected = [t.symbols for t in prompt_tokens(load_model("glassbox-stories").tokenizer, PROMPT)]
    assert chips == expected and "Ġcat" in chips
    no_errors(page)
    page.screenshot(path=str(ARTIFACTS / "tokenization.png"), full_page=False)

    # the sidebar names every page by its lesson's title, in the course's order
    sidebar = page.locator('[data-testid="stSidebarNav"] a').all_inner_texts()
    assert [name.strip() for name in sidebar] == ["Home"] + [entry.title for entry in COURSE if entry.is_built]

    # the later lessons, reached through the sidebar in the same session, each with its main figure
    for number, main_figure, shot in (
            (2, "svg .gtitle >> text=token embedding matrix", "embeddings.png"),
            (3, "svg .gtitle >> text=input to block 0", "positions.png"),
            (4, "svg .gtitle >> text=Attention flow", "attention.png"),
            (5, "svg .gtitle >> text=Direct contributions to the logit", "feed_forward.png"),
            (6, "svg .gtitle >> text=Where the logit of", "sampling.png")):
        page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=LESSONS[number - 1].title, exact=True).click()
        page.locator(main_figure).first.wait_for(timeout=60_000)
        wait_until_idle(page)
        assert page.get_by_role("textbox", name="Your prompt").input_value() == PROMPT
        title = main_figure.split("text=")[1]  # and a screen reader finds the chart by its title
        assert page.get_by_role("figure", name=re.compile(re.escape(title))).count() >= 1, title
        no_errors(page)
        page.screenshot(path=str(ARTIFACTS / shot), full_page=False)
        if number == 5:  # the browser lays out only what is near the screen, and the whole lesson when printing
            assert page.evaluate(LAST_CHART_RENDERED) is False
            page.emulate_media(media="print")
            page.wait_for_function(LAST_CHART_RENDERED, timeout=10_000)  # (at the browser's next rendering)
            page.emulate_media(media="screen")
        if number == 4:  # an element under the pointer or with the focus is not contained (course_ui.NEAR_THE_SCREEN_ONLY):
            table = page.locator('[data-testid="stMainBlockContainer"] [data-testid="stDataFrame"]').first
            to_the_middle(page, table)  # (at the window's top edge, its toolbar, above it, could not be clicked: 1 run in 8)
            table.hover()  # a table's toolbar shows above it, and its full screen fills the window
            table.locator("xpath=ancestor::div[@data-testid='stElementContainer'][1]").get_by_role(
                "button", name="Fullscreen").click(timeout=10_000)
            page.wait_for_function("() => document.querySelector('[data-testid=\"stMainBlockContainer\"] "
                                   "[data-testid=\"stDataFrame\"]').getBoundingClientRect().height > 0.8 * window.innerHeight")
            page.keyboard.press("Escape")
            page.get_by_role("combobox", name="Query position").focus()  # its focus ring is drawn whole, outside its box
            assert page.evaluate("() => getComputedStyle(document.activeElement.closest("
                                 "'[data-testid=\"stElementContainer\"]')).contentVisibility") == "visible"
        if number in (4, 6):  # the flows: a band answers a hover, though its hover points are not drawn
            assert hovered_band(page, title) in hover_texts_of_the_first_band(page, title)

    # and the two pages without a main figure to name, the map and lesson 7, on the same model
    # (tests/test_browser_families.py walks every page on the Llama-design one)
    for entry in (COURSE[0], LESSONS[6]):
        page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=entry.title, exact=True).click()
        page.get_by_text(f"Lesson {entry.number} ·").first.wait_for(timeout=60_000)
        wait_until_idle(page)
        assert page.locator('[data-testid="stSidebar"]').get_by_text("Using glassbox-stories").count() == 1
        no_errors(page)
        if entry is COURSE[0]:  # a head clicked on the whole map opens lesson 4 on that very head
            parts = [part.key for part in build_map(load_model("glassbox-stories").model).parts]
            whole_map = page.get_by_role("figure", name=re.compile(r"^glassbox-stories: 4 blocks"))
            whole_map.locator(".scatterlayer .trace").first.locator("path.point").nth(
                parts.index("blocks.3.attn.head.2")).click(force=True)
            page.locator("svg .gtitle >> text=Attention pattern, layer 3, head 2").first.wait_for(timeout=60_000)
            wait_until_idle(page)
            for label, index in (("Layer", "3"), ("Head", "2")):
                picker = page.get_by_role("radiogroup", name=label, exact=True).first
                assert picker.get_by_role("radio", name=index, exact=True).is_checked(), label


# whether the browser lays out and paints the lesson's last chart (course_ui.NEAR_THE_SCREEN_ONLY)
LAST_CHART_RENDERED = """() => [...document.querySelectorAll('[data-testid="stMainBlockContainer"] .js-plotly-plot')].pop()
    .checkVisibility({contentVisibilityAuto: true})"""

FLOW_CHART = """title => [...document.querySelectorAll('.js-plotly-plot')].find(
    plot => ((plot._fullLayout.title || {}).text || '').includes(title))"""


def to_the_middle(page, element) -> None:
    """Scroll `element` to the middle of the window, and again once the page has settled: the
    elements around it are laid out once near the screen (course_ui.NEAR_THE_SCREEN_ONLY), which can move it."""
    for _ in range(2):
        element.evaluate("element => element.scrollIntoView({block: 'center'})")
        page.evaluate("() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")


def hover_texts_of_the_first_band(page, title: str) -> list[str]:
    """What the flow named by `title` says on hover at each point along its first band."""
    return page.evaluate(f"title => ({FLOW_CHART})(title).data[0].customdata.map(text => text.replace(/<br>/g, ''))"
                         f".slice(0, {len(HOVER_POINTS)})", title)


def hovered_band(page, title: str) -> str:
    """Move the mouse onto the middle of the flow's first band, 5 px off its centre line, and read the hover."""
    chart = page.locator(".stPlotlyChart", has=page.locator(f"svg .gtitle >> text={title}")).first
    to_the_middle(page, chart)
    x, y = page.evaluate(f"""title => {{
        const plot = ({FLOW_CHART})(title), box = plot.getBoundingClientRect();
        const xaxis = plot._fullLayout.xaxis, yaxis = plot._fullLayout.yaxis, point = plot.calcdata[0][3];
        return [box.left + xaxis._offset + xaxis.c2p(point.x), box.top + yaxis._offset + yaxis.c2p(point.y) + 5];
    }}""", title)
    page.mouse.move(x, y)
    label = chart.locator(".hovertext").first
    label.wait_for(timeout=10_000)
    return label.text_content()  # (an SVG text: its lines run together, as the <br>s are dropped above)


def test_a_pasted_prompt_over_the_limit_says_so(app_url, page):
    """Issue 13: the browser dropped a 100,000-character paste without a word (the box's max_chars)."""
    from course_ui import PROMPT_LIMIT

    page.goto(app_url)
    box = page.get_by_role("textbox", name="Your prompt")
    box.wait_for(timeout=60_000)
    wait_until_idle(page)
    box.fill("The cat sat on the mat. " * 5000)  # 120,000 characters
    box.press("Control+Enter")
    page.get_by_text(f"Prompts are limited to {PROMPT_LIMIT:,} characters: yours has 120,000").wait_for(timeout=60_000)
    wait_until_idle(page)
    assert len(box.input_value()) == PROMPT_LIMIT
    no_errors(page)


LOSS_POINTS = """() => {
    for (const plot of document.querySelectorAll('.js-plotly-plot')) {
        const title = plot.layout && plot.layout.title && plot.layout.title.text;
        // the steps as Plotly holds them once drawn (figures send numbers as a binary block, decoded there)
        if (title && title.includes('Loss while training')) return plot._fullData[0].x.length;
    }
    return -1;
}"""


def loss_points(page) -> int:
    """How many training-loss points the live loss chart has drawn."""
    return page.evaluate(LOSS_POINTS)


def test_start_a_training_run_see_the_loss_chart_update_and_stop_it(app_url, page):
    ARTIFACTS.mkdir(exist_ok=True)
    start_training_run(page, app_url)
    first = loss_points(page)
    assert first >= 0
    page.wait_for_function(f"() => ({LOSS_POINTS})() > {first}", timeout=60_000)  # the chart redraws with new steps
    no_errors(page)
    page.screenshot(path=str(ARTIFACTS / "training.png"), full_page=False)
    assert "run=" in page.url  # the address names the run...
    classmate = page.context.browser.new_context().new_page()  # ...which a student may copy to a classmate:
    classmate.goto(page.url)  # who watches the run, and cannot stop it while its owner's page is open
    classmate.get_by_text("This run belongs to another open page").first.wait_for(timeout=60_000)
    assert not classmate.get_by_role("button", name="Stop", exact=True).is_enabled()
    classmate.context.close()
    before_reload = loss_points(page)
    page.reload()  # ...so a reload (a new session) finds it again, still training, with its loss so far
    page.wait_for_function(f"() => ({LOSS_POINTS})() > {before_reload}", timeout=60_000)
    assert page.get_by_role("button", name="Stop", exact=True).is_enabled()
    page.get_by_role("button", name="Stop", exact=True).click()
    stopped = page.get_by_text(re.compile(r"^stopped: step [\d,]+ of")).first
    stopped.wait_for(timeout=60_000)
    wait_until_idle(page)
    steps = int(re.search(r"step ([\d,]+) of", stopped.inner_text()).group(1).replace(",", ""))
    page.get_by_role("button", name="Download the model (zip, Hugging Face format)").wait_for(timeout=60_000)
    wait_until_idle(page)
    assert loss_points(page) == steps > first  # the stopped run's every step, and no step after it
    no_errors(page)


def test_a_text_too_short_to_train_on_says_why_in_one_sentence(app_url, page):
    """Issue 13 A: Start did nothing, silently, on a text the page called long enough."""
    from core.corpus import generate_stories

    text = " ".join(story.text for story in generate_stories(40, 5))[:1500]
    page.goto(app_url + "/Training")
    choice = page.get_by_text("Your own text", exact=True)
    choice.wait_for(timeout=60_000)
    wait_until_idle(page)
    choice.click()
    box = page.get_by_role("textbox", name=re.compile("paste text here"))
    box.wait_for(timeout=60_000)
    wait_until_idle(page)
    box.fill(text)
    box.press("Control+Enter")
    sentence = page.get_by_text("Your text has 1,500 characters")
    sentence.wait_for(timeout=60_000)
    wait_until_idle(page)
    assert sentence.count() == 1 and "at least 66 of each" in sentence.inner_text()
    assert page.get_by_role("button", name="Start", exact=True).is_disabled()
    no_errors(page)
    # a file long enough, uploaded beside the pasted text: the file is trained on, and the page says so
    long_enough = " ".join(story.text for story in generate_stories(400, 6))[:20_000]
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(
        files=[{"name": "stories.txt", "mimeType": "text/plain", "buffer": long_enough.encode()}])
    said = page.get_by_text("Training uses the uploaded file, not the pasted text")
    said.wait_for(timeout=60_000)
    wait_until_idle(page)
    assert said.count() == 1 and page.get_by_text("Your text has 1,500 characters").count() == 0
    assert page.get_by_role("button", name="Start", exact=True).is_enabled()
    no_errors(page)


def test_pick_a_model_folder_in_the_picker(app_url, page, tmp_path):
    """The folder choice of the model picker, clicked and typed as a student does it."""
    import shutil

    from core.models import BUNDLED_MODEL_DIR

    folder = tmp_path / "my-model"
    shutil.copytree(BUNDLED_MODEL_DIR, folder)
    page.goto(app_url)
    page.get_by_text("The lessons").first.wait_for(timeout=60_000)
    wait_until_idle(page)
    page.locator('[data-testid="stSelectbox"]').first.click()
    page.get_by_role("option", name="A model folder on this computer…").click()
    box = page.get_by_role("textbox", name=re.compile(r"^Folder with a .*model \(config\.json, weights, tokenizer\)"))
    box.fill(str(folder))
    box.press("Enter")
    page.get_by_text(f"In use: {folder}").first.wait_for(timeout=60_000)
    wait_until_idle(page)
    no_errors(page)
    page.get_by_role("link", name="Attention", exact=True).first.click()
    page.locator("svg .gtitle >> text=Attention flow").first.wait_for(timeout=60_000)
    wait_until_idle(page)
    assert page.get_by_text(f"Using {folder}").count() == 1  # the lesson runs on the chosen folder
    no_errors(page)


def received_deltas(page) -> list:
    """From now on, every Streamlit delta (one element drawn) the page receives over its websocket."""
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    deltas: list = []

    def frame(payload) -> None:
        if isinstance(payload, bytes):
            message = ForwardMsg()
            message.ParseFromString(payload)
            if message.HasField("delta"):
                deltas.append(message.delta)

    page.on("websocket", lambda socket: socket.on("framereceived", frame))
    return deltas


def test_a_control_reruns_its_stretch_and_everything_that_depends_on_it_follows(app_url, page):
    """Issue 19: moving a control reruns only its stretch of the lesson (a fragment: every element
    sent after the move belongs to one), and no figure that depends on the control is left stale."""
    deltas = received_deltas(page)
    page.goto(app_url + "/Sampling")
    page.locator("svg .gtitle >> text=Where the logit of").first.wait_for(timeout=60_000)
    wait_until_idle(page)
    assert any(not delta.fragment_id for delta in deltas)  # the page itself is drawn by a full run
    deltas.clear()
    slider = page.get_by_role("slider", name="Temperature T")
    slider.focus()
    for _ in range(4):  # 1.0 -> 1.2, one step of 0.05 at a time
        slider.press("ArrowRight")
        wait_until_idle(page)
    page.locator("svg .gtitle >> text=Where the probability goes at T = 1.2").wait_for(timeout=30_000)
    assert page.locator("svg .gtitle >> text=at T = 1 and at your temperature").count() == 1
    assert page.get_by_text("Entropy at T = 1.2").count() == 1
    assert page.locator("svg >> text=T = 1.2").count() >= 2  # the sweep's markers follow the slider
    assert deltas and all(delta.fragment_id for delta in deltas)
    no_errors(page)

    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=LESSONS[3].title, exact=True).click()
    page.locator("svg .gtitle >> text=Attention flow").first.wait_for(timeout=60_000)
    wait_until_idle(page)
    # the head's output is drawn on request: absent until the student opens its section
    starting = dict(pair.strip().split("=") for pair in load_lesson(LESSONS[3].markdown).meta["starting_choices"].split(","))
    layer, head = int(starting["attn_layer"]), int(starting["attn_head"])
    picked = (head + 1) % 4  # another head of the same layer (the course model has 4)
    output = f"svg .gtitle >> text=Head {head} output z"
    assert page.locator(output).count() == 0
    label = next(part.on_request for part in load_lesson(LESSONS[3].markdown).parts
                 if getattr(part, "name", None) == "head-output")
    page.get_by_text(label, exact=True).click()
    page.locator(output).first.wait_for(timeout=30_000)
    wait_until_idle(page)
    deltas.clear()
    pick_index(page, "Head", picked)
    wait_until_idle(page)
    for title in (f"Attention pattern, layer {layer}, head {picked}", f"Attention flow, layer {layer}, head {picked}",
                  f"Head {picked} output z"):
        page.locator(f"svg .gtitle >> text={title}").first.wait_for(timeout=30_000)
    assert deltas and all(delta.fragment_id for delta in deltas)
    no_errors(page)

    # after another lesson, the head the student picked and the section they opened are as they
    # left them (both changed inside a live stretch: Streamlit forgets such a widget's value on a
    # change of page, and course_ui.remember_kept_values keeps it); the way back is a click on an
    # attention part of the sidebar map, which opens the part's lesson
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=LESSONS[0].title, exact=True).click()
    page.locator(".gb-chip").first.wait_for(timeout=60_000)
    wait_until_idle(page)
    parts = [part.key for part in build_map(load_model("glassbox-stories").model, small=True).parts]
    sidebar_map = page.locator('[data-testid="stSidebar"]').get_by_role("figure", name="Map of glassbox-stories", exact=False)
    map_points = sidebar_map.locator(".scatterlayer .trace").first.locator("path.point")  # (found by its name, as a screen reader does)
    map_points.nth(parts.index("blocks.0.attn")).click(force=True)
    page.get_by_text("Lesson 4 · Attention").first.wait_for(timeout=60_000)
    page.locator(f"svg .gtitle >> text=Head {picked} output z").first.wait_for(timeout=60_000)
    wait_until_idle(page)
    no_errors(page)
