"""What every page of the app shares: the model picker, the prompt box, the lesson renderer
and the Previous / Next links. Layout and widgets only; the work is done in `core`."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import streamlit as st

from core.course import LESSONS, LessonEntry, lesson, neighbours
from core.figures import md_escape, plain_text
from core.lessons import Aside, BadSlot, Figure, Lesson, Markdown, Question, load_lesson
from core.models import DEFAULT_MODEL, REGISTRY, LoadedModel, ModelLoadError, family_order, picker_label
from core.plot_style import BROWSER_CONFIG, figure
from core.tokenization import tokens_text

LOCAL_FOLDER = "local-folder"
# Home.py's page object, set by Home.py at every run before any page runs. The lessons link to it
# rather than to the path "Home.py": the path is found only while Streamlit still lists the main
# script as a page, which a session opened at a lesson's address after other sessions does not
# (StreamlitPageNotFoundError in the previous/next links, found by the browser tests).
HOME_PAGE = "Home.py"
PROMPT_LIMIT = 20_000  # characters; a longer prompt is cut to this, with a message


def home_settings() -> dict[str, str]:
    return load_lesson("home.md").meta


SHARED_PROMPT_LIMIT = 2_000  # characters: a longer prompt is not put in the address (links stay short)


_warm_up_started = False


def warm_up_in_background() -> None:
    """Once per server process, in a thread: `warm_up`, so that a student reading Home does not wait
    for it in the first lesson. Home itself imports neither PyTorch nor transformers, so it stays fast."""
    global _warm_up_started
    import sys

    if _warm_up_started or "streamlit.testing.v1" in sys.modules:  # a real server only, not an in-process AppTest
        return
    _warm_up_started = True
    import gc
    import threading

    def work() -> None:
        # The collector off while the warm-up loads: importing PyTorch and transformers makes
        # millions of objects that all live on, and collecting among them is about a seventh of the
        # imports' time (4.2 -> 3.6 s of CPU here) that a student who opens a lesson at once waits for
        gc.disable()
        try:
            warm_up()
        finally:
            # what is loaded now lives as long as the server: the collector need not scan it again (the
            # warm-up's own garbage, ~16,000 objects, is frozen with it: collecting it would hold every
            # student's page for 0.6 s)
            gc.freeze()
            gc.enable()

    threading.Thread(target=work, name="glassbox-warm-up", daemon=True).start()


def warm_up() -> None:
    """What the lessons share and would otherwise build at a student's first visit: import PyTorch and
    transformers and load the course model (about 4 s on two cores), build GPT-2's tokenizer (lesson 1
    compares with it, 0.5 s), count the well-known models' sizes (lessons 0 and 4, 2 s), run lesson
    4's induction test on the bundled models (0.2 s each), and prepare lesson 7's default text and
    tokenizer (1-2 s)."""
    from core import live_training
    from core.cached import cached_gpt2_tokenizer, cached_induction_circuit, cached_model, cached_training_data  # imports torch
    from core.models import reference_models

    cached_model(DEFAULT_MODEL.key)
    cached_gpt2_tokenizer()
    reference_models()
    for choice in REGISTRY:  # every bundled model (lesson 4 offers the one with a circuit)
        if not choice.from_hub:
            cached_induction_circuit(choice.key)  # loads the model if need be
    cached_training_data(live_training.DEFAULT_SOURCE, "", live_training.DEFAULT_BPE_VOCABULARY)


def load_lesson_elements_early() -> None:
    """Draw, out of sight at the end of Home, one empty element of each kind the lessons draw first
    (a Plotly chart, a table, a code block), so that the browser fetches and compiles their
    JavaScript (about 8 MB: Plotly alone 4.7 MB) while the student reads Home, not after the click
    on lesson 1. Nothing here shows; Home's own elements are sent before these."""
    with st.container(key="glassbox-early-elements", height=1, border=False):
        st.html("<style>.st-key-glassbox-early-elements,"  # out of sight, and out of the page's flow
                ":has(> .st-key-glassbox-early-elements){visibility:hidden;position:absolute;"
                "height:1px;width:1px;overflow:hidden}</style>")
        show_figure(figure([], dict(height=10)), "glassbox-early-plotly")
        st.dataframe([{"": ""}], hide_index=True)
        st.code("", language="python")


# The browser skips the style, layout and painting of a lesson's elements far from the screen until
# the student scrolls near them (CSS content-visibility); their Plotly charts are still built at once.
# A lesson draws 5-20 charts and the student sees two or three: measured in Chromium (bench_browser,
# 2 x 4 visits each), lesson 4's second visit went from 1.31-1.55 s to 0.96-1.12 s, lesson 5's
# from 1.35-1.73 s to 0.81-1.29 s. Until drawn, an element holds 300 px of the page (then its own
# last height: `auto`), so the scroll bar barely moves as the student scrolls down.
# `auto` also contains each element's layout and painting even on screen, which would clip what an
# element draws outside its box (a table's toolbar above it, a focus ring) and keep its full-screen
# view inside its box: an element under the pointer or holding the focus is released from it. On
# screen only: printing lays out and paints the whole lesson.
_ELEMENT = '[data-testid="stMainBlockContainer"] [data-testid="stElementContainer"]'
NEAR_THE_SCREEN_ONLY = (f"<style>@media screen{{{_ELEMENT}{{content-visibility:auto;contain-intrinsic-block-size:auto 300px}}"
                        f"{_ELEMENT}:hover,{_ELEMENT}:focus-within{{content-visibility:visible}}}}</style>")


def draw_only_what_is_near_the_screen() -> None:
    st.html(NEAR_THE_SCREEN_ONLY)


def init_state() -> None:
    """Session defaults, set once. `prompt` and `model_key` outlive any one page's widgets. A new
    session (a shared link, a reload) starts from the address's ?prompt=…&model=… if it has them."""
    state = st.session_state
    params = st.query_params
    if "prompt" not in state:
        shared = params.get("prompt")
        state.prompt = shared[:PROMPT_LIMIT] if shared is not None else home_settings().get("default_prompt", "")
    if "model_key" not in state:
        state.model_key = params.get("model") or DEFAULT_MODEL.key
    state.setdefault("model_message", "")
    if "t_run_token" not in state:
        state.t_run_token = params.get("run")
        find_training_run()


def find_training_run():
    """This session's training run (lesson 7), found again after a reload by the token the address
    keeps; the session attaches to it, so the run lives while this page does. None if there is none."""
    state = st.session_state
    if state.get("t_run") is None and state.get("t_run_token"):
        from core.training_run import RUNS  # only with a token in the address: its run has loaded torch already

        state.t_run = RUNS.find(state.t_run_token)
        if state.t_run is None:
            state.t_run_token = None  # ended and forgotten: the address stops naming it
        else:
            state.t_run.attach(session_alive_check())
    return state.get("t_run")


def share_in_address() -> None:
    """Keep the prompt and the model in the page's address, so that a reload keeps them and the
    address can be sent to someone (an instructor's link opens the lesson on that prompt)."""
    state, params = st.session_state, st.query_params
    prompt = state.get("prompt", "")
    wanted = {"model": state.model_key} if state.model_key != DEFAULT_MODEL.key else {}
    if state.get("t_run_token"):
        wanted["run"] = state.t_run_token  # lesson 7's run, found again after a reload (not part of a shared link)
    if 0 < len(prompt) <= SHARED_PROMPT_LIMIT and prompt != home_settings().get("default_prompt", ""):
        wanted["prompt"] = prompt
    if dict(params) != wanted:
        params.from_dict(wanted)


def keep_values(*keys: str) -> None:
    """Widgets of this page whose values a student expects to find again after visiting other
    lessons (settings, not choices that depend on the prompt). Streamlit forgets a widget's
    value at the end of any run that does not draw it; `restore_kept_values`, at the start of
    every page, gives each kept value back to its own key, which keeps it (Streamlit's docs,
    "Working with widgets in multipage apps"). A kept widget must not also be given a default
    in its call: its default belongs in `st.session_state.setdefault`."""
    st.session_state.setdefault("kept_widget_keys", set()).update(keys)


def remember_kept_values() -> None:
    """Copy the kept widgets' values to the session's own store. Called at the end of a live
    stretch: Streamlit forgets a widget last changed in a fragment as soon as the student changes
    page, before `restore_kept_values` can give it back."""
    state = st.session_state
    store = state.setdefault("kept_values", {})
    for key in state.get("kept_widget_keys", ()):
        if key in state:
            store[key] = state[key]


def restore_kept_values() -> None:
    state = st.session_state
    store = state.get("kept_values", {})
    for key in state.get("kept_widget_keys", ()):
        if key in state:
            state[key] = state[key]
        elif key in store:
            state[key] = store[key]


# --- the model ---------------------------------------------------------------------------------
def _switch_model() -> None:
    """Called when the picker changes: try the new model now; on failure keep the old one."""
    state = st.session_state
    choice = state.model_box
    state.choosing_folder = choice == LOCAL_FOLDER  # keeps the folder box open until a folder loads
    key = state.get("local_folder", "").strip() if choice == LOCAL_FOLDER else choice
    if not key:
        return
    from core.cached import cached_model

    try:
        cached_model(key)
    except ModelLoadError as error:
        state.model_message = f"{error} The course carries on with {model_name(state.model_key)}."
        return
    state.model_key, state.model_loaded, state.model_message = key, key, ""


def use_model(key: str) -> None:
    """A button's callback: switch to the model `key`, as the sidebar's picker would."""
    st.session_state.model_box = key
    _switch_model()


def model_picker(where=st.sidebar) -> None:
    init_state()
    state = st.session_state
    trained = state.get("trained_models", {})  # folder -> label: models this session trained in lesson 7
    order = family_order()
    by_family = sorted(REGISTRY, key=lambda choice: (choice.from_hub, order.index(choice.family)))  # course models first
    keys = [choice.key for choice in by_family] + list(trained) + [LOCAL_FOLDER]
    labels = ({choice.key: picker_label(choice) for choice in REGISTRY} | trained
              | {LOCAL_FOLDER: "A model folder on this computer…"})
    # the picker shows the model in use, or the folder choice while the student types a path
    state.model_box = state.model_key if state.model_key in keys and not state.get("choosing_folder") \
        else LOCAL_FOLDER
    where.selectbox("Model", keys, key="model_box", format_func=labels.get, on_change=_switch_model)
    if state.model_box == LOCAL_FOLDER:
        state.setdefault("local_folder", state.model_key if state.model_key not in keys else "")
        where.text_input("Folder with a model (config.json, weights, tokenizer)", key="local_folder",
                         on_change=_switch_model)
    if state.model_message:
        where.warning(md_escape(state.model_message))  # it may hold a folder path the student typed


def family_note(family: str, where=st) -> None:
    """One line under the picker: the family's name and what it changes from GPT-2."""
    from core.families import FAMILIES

    found = FAMILIES.get(family)
    if found is not None:
        where.caption(f"{found.name} ({found.year}): {found.differs}.")


def current_model() -> LoadedModel:
    """The chosen model; if it cannot be loaded, the bundled one, with a one-sentence message."""
    from core.cached import cached_model

    init_state()
    state = st.session_state
    try:
        loaded = cached_model(state.model_key)
    except ModelLoadError as error:
        state.model_message = f"{error} The course carries on with the bundled course model."
        state.model_key = DEFAULT_MODEL.key
        loaded = cached_model(DEFAULT_MODEL.key)
    state.model_loaded = state.model_key
    return loaded


def model_checked() -> bool:
    """Whether the chosen model is known to load without loading it: a bundled course model, or the
    model this session has loaded already. Not so for a model a link's ?model= names, until loaded."""
    state = st.session_state
    return state.model_key == state.get("model_loaded") or any(
        choice.key == state.model_key and not choice.from_hub for choice in REGISTRY)


# --- the prompt ---------------------------------------------------------------------------------
def _store_prompt() -> None:
    """The box's text becomes the prompt (set_prompt)."""
    set_prompt(st.session_state.prompt_box)


def add_trained_model(folder: str, label: str) -> None:
    """Offer a model this session trained in the picker of every lesson, and switch to it."""
    state = st.session_state
    state.setdefault("trained_models", {})[folder] = label
    state.model_key, state.model_message, state.choosing_folder = folder, "", False


def model_name(key: str) -> str:
    """How the page names a model: a model this session trained by its label ("Your trained model
    (600 steps)"), not by the server folder it was saved in; any other by its key."""
    return st.session_state.get("trained_models", {}).get(key, key)


def set_prompt(text: str) -> None:
    """`text` becomes the prompt (typed, or made by a button such as lesson 4's "Repeat my prompt");
    beyond PROMPT_LIMIT characters, its first PROMPT_LIMIT, said in one sentence (the browser would
    otherwise drop an over-long paste without a word)."""
    state = st.session_state
    state.prompt_message = ""
    if len(text) > PROMPT_LIMIT:
        state.prompt_message = (f"Prompts are limited to {PROMPT_LIMIT:,} characters: yours has {len(text):,}, so "
                                f"the lessons use its first {PROMPT_LIMIT:,}.")
        text = text[:PROMPT_LIMIT]
    state.prompt = text


def prompt_box(label: str = "Your prompt", height: int = 90) -> str:
    """A text box bound to the session's prompt, so it follows the student from page to page."""
    init_state()
    st.session_state.prompt_box = st.session_state.prompt
    # no max_chars: with it, Streamlit's box silently ignores a paste that would go over the limit
    st.text_area(label, key="prompt_box", on_change=_store_prompt, height=height,
                 help=f"Up to {PROMPT_LIMIT:,} characters. Press Ctrl+Enter (or click outside the box) to apply.")
    if st.session_state.get("prompt_message"):
        st.warning(st.session_state.prompt_message)
    return st.session_state.prompt


# --- lessons ------------------------------------------------------------------------------------
def lesson_key(number: int) -> str:
    """The key under which a lesson's widgets and answers are kept in the session."""
    return f"lesson{number}"


def answers(key: str) -> dict[int, str]:
    """The options this session picked in the questions of the lesson kept under `key`, by
    question number. Kept outside the radio widgets, whose state Streamlit drops when the
    student changes page."""
    return st.session_state.setdefault("answers", {}).setdefault(key, {})


def render_question(question: Question, number: int, key: str) -> None:
    saved = answers(key)
    with st.container(border=True):
        st.markdown(question.prompt)
        if question.options:
            texts = [text for text, _ in question.options]
            earlier = texts.index(saved[number]) if saved.get(number) in texts else None
            picked = st.radio("Your answer", texts, index=earlier, key=f"{key}-question-{number}",
                              label_visibility="collapsed")
            if picked is not None:
                saved[number] = picked
                if question.is_right(picked):
                    st.success("Right.")
                else:
                    st.error("Not quite.")
                if question.explanation:
                    st.markdown(question.explanation)
        elif question.explanation:
            with st.expander("Show the answer"):
                st.markdown(question.explanation)


@dataclass(frozen=True)
class LiveStretch:
    """A stretch of a lesson, from the figure slot `first` to the slot `last` (the same slot when
    None), that reruns on its own when a control in it moves (a Streamlit fragment), so one slider
    redraws the figures that depend on it and not the whole lesson. `refresh` recomputes whatever
    the page derives from those controls at its top (a fragment rerun does not run the top again).
    Everything that depends on a control in the stretch must be inside it."""

    first: str
    last: str | None = None
    refresh: Callable[[], None] | None = None


def render_lesson(lesson: Lesson, figures: dict[str, Callable[[], None]], key: str,
                  live: tuple[LiveStretch, ...] = ()) -> None:
    """The lesson's markdown in order, each figure slot filled by the page's builder; the
    stretches in `live` are drawn as fragments."""
    numbered, questions = [], 0
    for part in lesson.parts:  # questions are numbered in lesson order, wherever they are drawn
        numbered.append((part, questions))
        questions += isinstance(part, Question)
    starts = {stretch.first: stretch for stretch in live}
    index = 0
    while index < len(numbered):
        part = numbered[index][0]
        stretch = starts.get(part.name) if isinstance(part, Figure) else None
        if stretch is None:
            _render_part(*numbered[index], figures, key)
            index += 1
            continue
        last = stretch.last or stretch.first
        end = next((j for j in range(index, len(numbered))
                    if isinstance(numbered[j][0], Figure) and numbered[j][0].name == last), index)
        _live_stretch(numbered[index:end + 1], figures, key, stretch.refresh)
        index = end + 1


@st.fragment
def _live_stretch(parts: list, figures: dict[str, Callable[[], None]], key: str, refresh) -> None:
    if refresh is not None:
        refresh()
    for part, number in parts:
        _render_part(part, number, figures, key)
    remember_kept_values()


def _render_part(part, question_number: int, figures: dict[str, Callable[[], None]], key: str) -> None:
    if isinstance(part, Markdown):
        st.markdown(part.text)
    elif isinstance(part, Figure):
        builder = figures.get(part.name)
        if builder is None:
            st.warning(f"The lesson asks for a figure called “{part.name}”, which this page does not "
                       f"have. Figures on this page: {', '.join(sorted(figures))}.")
        elif part.on_request:
            on_request(part.on_request, section_key(key, part.name), lambda: _draw_figure(builder, key, part.name))
        else:
            _draw_figure(builder, key, part.name)
    elif isinstance(part, BadSlot):
        st.warning(f"This line of the lesson is not a figure slot this app understands: {part.line}")
    elif isinstance(part, Question):
        render_question(part, question_number, key)
    elif isinstance(part, Aside):
        with st.expander(part.label):
            st.markdown(part.text)


def _draw_figure(builder: Callable[[], None], key: str, slot: str) -> None:
    builder()
    code_beside(key, slot)


def section_key(lesson_key: str, slot: str) -> str:
    """The key of the switch that opens a figure slot drawn on request (`| on request:` in the markdown)."""
    return f"open-{lesson_key}-{slot}"


def on_request(label: str, open_key: str, draw: Callable[[], object]) -> None:
    """A section the student opens: closed, nothing in it is computed or sent to the browser (a
    lesson's figures are most of its drawing time); open, it stays open across lessons."""
    keep_values(open_key)
    section = st.expander(label, key=open_key, on_change="rerun")
    if section.open:
        with section:
            draw()


def code_beside(key: str, slot: str) -> None:
    """The project's own code that computed this figure, read from the source as it runs."""
    from core.code_view import FIGURE_CODE, figure_code

    number = int(key.removeprefix("lesson")) if key.removeprefix("lesson").isdigit() else None
    if (number, slot) in FIGURE_CODE and st.toggle("Show the code that computed this", key=f"code-{key}-{slot}"):
        for where, source in figure_code(number, slot):  # read and drawn only on request (highlighting is heavy)
            st.caption(f"`{where}`")
            st.code(source, language="python")


def lesson_navigation(number: int) -> None:
    previous, following = neighbours(number)
    st.divider()
    left, right = st.columns(2)
    with left:
        _nav_link(previous, "←", HOME_PAGE, "Course home")
    with right:
        _nav_link(following, "→", None, None)


def _nav_link(entry: LessonEntry | None, arrow: str, fallback_page, fallback_label: str | None) -> None:
    if entry is None:
        if fallback_page:
            st.page_link(fallback_page, label=f"{arrow} {fallback_label}")
        return
    title = f"Lesson {entry.number}: {entry.title}"
    label = f"{arrow} {title}" if arrow == "←" else f"{title} {arrow}"
    if entry.is_built:
        st.page_link(entry.page, label=label)
    else:
        st.markdown(f"{label} *(coming soon)*")


def lesson_page(number: int) -> tuple[Lesson, LoadedModel]:
    """Start a lesson page: page config, sidebar (model picker), title. Returns the lesson and model."""
    entry = lesson(number)
    this_lesson = load_lesson(entry.markdown)
    st.set_page_config(page_title=f"{this_lesson.title} · Glassbox GPT", page_icon="🔍", layout="wide")
    draw_only_what_is_near_the_screen()
    init_state()
    restore_kept_values()
    st.session_state.setdefault("visited", set()).add(number)
    loaded = current_model()  # first: a link's model that cannot load says so in the picker below, on this view
    model_picker()
    share_in_address()
    st.sidebar.caption(f"Using **{md_escape(model_name(loaded.name))}**")
    apply_starting_choices(this_lesson, number)
    apply_map_choices(number)
    if number > 0:
        you_are_here(loaded, number)
    st.title(f"Lesson {number} · {this_lesson.title}")
    suggested_prompts(this_lesson, number)
    return this_lesson, loaded


def _value(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def apply_starting_choices(this_lesson: Lesson, number: int) -> None:
    """The lesson's front matter `starting_choices: key=value, …` (widget keys), set the first time
    the student opens the lesson, so that each control starts where the text sends the student."""
    state = st.session_state
    started = state.setdefault("started_lessons", set())
    if number in started:
        return
    started.add(number)
    for pair in this_lesson.meta.get("starting_choices", "").split(","):
        key, _, value = pair.partition("=")
        if key.strip() and value.strip():
            state[key.strip()] = _value(value.strip())


def suggested_prompts(this_lesson: Lesson, number: int) -> None:
    """The lesson's front matter `suggested_prompts: A | B | …`: one click puts a prompt in the box."""
    prompts = [text.strip() for text in this_lesson.meta.get("suggested_prompts", "").split("|") if text.strip()]
    if not prompts:
        return
    columns = st.columns([1] + [2] * len(prompts))
    columns[0].caption("Try:")
    for index, (column, text) in enumerate(zip(columns[1:], prompts)):
        column.button(text if len(text) <= 48 else text[:45] + "…", key=f"suggest-{number}-{index}", help=text,
                      on_click=set_prompt, args=(text,), width="stretch")


# --- the map, small, in every lesson's sidebar ---------------------------------------------------------
LESSON_PARTS = {1: {"tokens"}, 2: {"embed"}, 3: {"position"}, 4: {"attention", "head"}, 5: {"mlp", "norm", "add"},
                6: {"unembed"}, 7: {"tokens", "embed", "position", "norm", "attention", "mlp", "unembed"}}


def ablated_parts() -> set[str]:
    """The map's keys of the heads and MLPs the student switched off in lessons 4 and 5."""
    state = st.session_state
    heads = {f"blocks.{layer}.attn.head.{head}" for layer, head in state.get("attn_ablate", [])}
    return heads | {f"blocks.{layer}.mlp" for layer, _ in state.get("ff_ablate", [])}


def open_clicked_lesson(chart_key: str, choose_the_part: bool = True) -> None:
    """on_select of a map: remember which lesson the clicked part belongs to (switched to after the
    run) and, on the full map (`choose_the_part`), the part itself: that lesson's pickers start on
    the head or the MLP clicked (the sidebar's map draws one block for all, so names no layer)."""
    points = st.session_state[chart_key].selection.points
    if points:
        part, target = points[0]["customdata"]
        st.session_state.map_go_to = target
        st.session_state.map_choices = (target, choices_for_part(part, target) if choose_the_part else {})


def apply_map_choices(number: int) -> None:
    """The part clicked on the map, chosen in the lesson it opened (after that lesson's starting
    choices, which a first visit sets): not in the map's own run, which switches page after it."""
    state = st.session_state
    if state.get("map_choices", (None, {}))[0] == number:
        state.update(state.pop("map_choices")[1])


def choices_for_part(part: str, lesson_number: int) -> dict[str, int]:
    """The widget keys that pick a map part in the lesson it opens: in lesson 4 its layer, and a
    head (blocks.3.attn.head.2) its head too; in lesson 5 its layer (an MLP, a norm, an addition);
    none for parts outside the blocks."""
    import re

    block = re.match(r"blocks\.(\d+)\.", part)
    if block is None:
        return {}
    if lesson_number == 4:
        head = re.fullmatch(r"blocks\.\d+\.attn\.head\.(\d+)", part)
        return {"attn_layer": int(block[1])} | ({"attn_head": int(head[1])} if head else {})
    return {"ff_layer": int(block[1])} if lesson_number == 5 else {}


def go_where_the_map_was_clicked(current: int) -> None:
    target = st.session_state.pop("map_go_to", None)
    if target is not None and target != current:
        st.switch_page(lesson(target).page)


def you_are_here(loaded: LoadedModel, number: int) -> None:
    """The small map in the sidebar: one block standing for all, this lesson's part in red, the
    parts switched off crossed out; a click on a part opens its lesson."""
    from core import diagrams, model_map

    highlight = set(LESSON_PARTS[number])
    if number == 3 and loaded.arch.rotary_dim:
        highlight = {"head"}  # rotary positions live inside attention
    # (not the head chosen in lesson 4: the head picker reruns only its stretch of the lesson, and a
    # sidebar that followed it would go stale)
    from core.cached import cached_figure
    from core.plot_style import finished

    state = st.session_state  # one block stands for all: a head switched off in any layer is crossed out on it
    ablated = {f"blocks.0.attn.head.{head}" for _, head in state.get("attn_ablate", [])}
    ablated |= {"blocks.0.mlp"} if state.get("ff_ablate") else set()
    key = (state.model_key, "you-are-here", number, tuple(sorted(ablated)), tuple(sorted(highlight)))
    sidebar_map = cached_figure(key, lambda: finished(diagrams.model_map_figure(
        model_map.build_map(loaded.model, small=True), "", highlight=highlight, height=330, ablated=ablated)))
    with st.sidebar:
        st.caption("You are here (click a part to open its lesson):")
        show_figure(sidebar_map, "you-are-here", on_select=lambda: open_clicked_lesson("you-are-here", choose_the_part=False),
                    name=f"Map of {loaded.name}, this lesson's parts highlighted")  # it has no title to be named by
    go_where_the_map_was_clicked(number)


def lesson_trace(loaded: LoadedModel, prompt: str, **interventions):
    """The cached trace of the prompt (None, with a message, if the prompt has no tokens)."""
    from core.cached import MAX_TRACE_TOKENS, cached_trace

    if not prompt:
        st.info("Your prompt is empty. Type something in the box above to see the model at work.")
        return None
    trace = cached_trace(loaded.name, prompt, **interventions)
    if trace.truncated and not interventions:
        st.caption(f"Your prompt has {trace.n_tokens + trace.dropped_tokens:,} tokens; the lesson shows the last "
                   f"{trace.n_tokens} (at most {MAX_TRACE_TOKENS}, and never more than the model's context).")
    return trace


def layer_head_state(trace, key: str) -> tuple[int, int]:
    """The chosen layer and head, kept in the session so every figure of the page agrees
    (reset to 0 when the model has fewer layers or heads than the choice)."""
    return kept_index(f"{key}_layer", trace.n_layer), kept_index(f"{key}_head", trace.n_head)


def kept_index(key: str, count: int) -> int:
    """The index (a layer, a head) kept in the session under `key`; 0, and kept so, when there is
    none, when this model has fewer, or when the picker's row lost its choice (it can: under load,
    Streamlit once handed the training page's layer picker None, and the page raised TypeError)."""
    value = st.session_state.get(key)
    if not (isinstance(value, int) and 0 <= value < count):
        st.session_state[key] = value = 0
    return value


def start_again_on_a_new_prompt(*keys: str) -> None:
    """Choices that name a position or a neuron of the prompt (they start at its last token, or at
    its most active neuron) start again from their default when the model or the prompt changes:
    position 3 of another prompt is another token. Call before their widgets are drawn."""
    state = st.session_state
    now = (state.get("model_key"), state.get("prompt"))
    chosen_on = state.setdefault("choices_made_on", {})
    for key in keys:
        if chosen_on.get(key) != now:
            state.pop(key, None)
            chosen_on[key] = now


def keep_only_offered(key: str, options: list) -> None:
    """Before a multiselect is drawn: drop chosen values it no longer offers (another prompt or
    model), which Streamlit would refuse."""
    if key in st.session_state:
        st.session_state[key] = [value for value in st.session_state[key] if value in options]


def index_picker(label: str, count: int, key: str, where=st) -> int:
    """One of 0 … count − 1 (a layer, a head) as a row of buttons: one click picks it, with no list
    to open first. A kept choice beyond this model's count goes back to 0 (`kept_index`)."""
    kept = kept_index(key, count)
    picked = where.segmented_control(label, range(count), key=key, required=True, wrap=True)  # GPT-2 small's 12 in two rows
    return kept if picked is None else picked


def layer_head_picker(trace, key: str) -> None:
    left, right = st.columns(2)
    index_picker("Layer", trace.n_layer, f"{key}_layer", left)
    index_picker("Head", trace.n_head, f"{key}_head", right)


def needs_trace(trace):
    """A decorator for a page's figure builders: when there is no trace (empty prompt), the
    figure's place shows a short note instead."""
    def decorate(build: Callable[[], None]) -> Callable[[], None]:
        def guarded() -> None:
            if trace is None:
                st.caption("(This figure appears when the prompt has at least one token.)")
            else:
                build()
        return guarded
    return decorate


def prediction_change_view(loaded: LoadedModel, before, after, key: str) -> None:
    """An intervention's effect on the next token: top-10 probabilities before and after, and the
    change in the log-probability of the token the unchanged model ranks first."""
    from core import figures
    from core.attention import prediction_change

    import pandas as pd

    change = prediction_change(before, after)
    top = figures.md_escape(figures.token_name(loaded.tokenizer, change.chosen_id))
    if after is before:  # nothing switched off: one distribution, no change to show
        st.caption("Nothing is switched off yet: pick some above to see the prediction change.")
        st.metric(f"log P({top})", f"{change.logprob_before:.4f}")
        return
    names = [figures.plotly_text(tokens_text(loaded.tokenizer, [i])) for i in change.token_ids]
    show_figure(figures.grouped_bars(names, {"before": change.before, "after": change.after},
                                     "Next-token probabilities, before and after (log scale: small ones show too)",
                                     "candidate next token", log_scale=True), f"{key}-bars")
    left, right = st.columns(2)
    left.metric(f"log P({top}) before", f"{change.logprob_before:.4f}")
    right.metric("after", f"{change.logprob_after:.4f}", delta=f"{change.logprob_after - change.logprob_before:+.4f}")
    st.dataframe(pd.DataFrame([{"token": figures.token_name(loaded.tokenizer, i), "before": round(b, 4),
                                "after": round(a, 4)} for i, b, a in zip(change.token_ids, change.before, change.after)]),
                 hide_index=True)
    return change


def chart(name: str, depends_on: tuple, build: Callable[[], object], where=None, on_select=None) -> None:
    """Draw a Plotly figure from `build`, built once per (model, prompt, name, depends_on).
    Building Plotly figures is most of a page's rerun time; choices that do not change a figure
    then cost nothing. `on_select(key)`: called when the student clicks a point of the figure."""
    from core.cached import cached_figure

    from core.plot_style import finished

    state = st.session_state  # margins fitted and the dict Streamlit draws made once, as the figure is built
    built = cached_figure((state.model_key, state.prompt, name, depends_on), lambda: finished(build()))
    show_figure(built, name, where, on_select=None if on_select is None else lambda: on_select(name))


def show_figure(figure, key: str, where=None, on_select: Callable[[], None] | None = None, name: str | None = None,
                **options) -> None:
    """Draw a Plotly figure as the course draws every figure: in its own template (core.plot_style),
    with Streamlit's theme off (it would restyle the figure in the browser, which also costs the
    browser about a sixth of lesson 4's drawing time), with the course's Plotly config
    (core.plot_style.BROWSER_CONFIG), and named for screen readers by `name`, or else by its title.
    `on_select`: called on a click on a point."""
    if on_select is not None:
        options.update(on_select=on_select, selection_mode="points")
    title = (figure.to_dict()["layout"].get("title") or {}).get("text")  # a chart's own dict, not a copy
    (where or st).plotly_chart(figure, key=key, theme=None, config=BROWSER_CONFIG, alt=name or plain_text(title),
                               **options)


def lesson_links(numbers: list[int]) -> None:
    """Links to earlier lessons (for recaps)."""
    for entry in LESSONS:
        if entry.number in numbers and entry.is_built:
            st.page_link(entry.page, label=f"Lesson {entry.number}: {entry.title}")


def may_control(run) -> bool:
    """Whether this page may pause, resume, stop or reset `run` (Attended.may_control: the page that
    started it, or the one that came back after a reload; not a classmate who opened its address)."""
    import uuid

    page = st.session_state.setdefault("page_id", uuid.uuid4().hex)  # this session's own (a reload is a new one)
    return run.may_control(page, session_alive_check())


def session_alive_check():
    """A function that tells, from any thread, whether this browser session is still connected
    (None outside a running Streamlit server, e.g. under AppTest)."""
    from streamlit import runtime
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    context = get_script_run_ctx()
    if not runtime.exists() or context is None:
        return None
    instance, session_id = runtime.get_instance(), context.session_id
    return lambda: instance.is_active_session(session_id)
