"""Glassbox GPT: `streamlit run Home.py`. The entry point names every page for the sidebar, each
lesson by the title its markdown gives (an instructor's new title shows there too), and runs the
one the student opened; the home page itself is `home()`. Light on purpose: no torch, no
transformers, so that Home paints while the lessons' imports warm up in the background."""
import streamlit as st

import course_ui
from core.course import COURSE
from core.figures import md_escape
from core.lessons import load_lesson
from core.models import choice_for, config_summary, folder_config

home_lesson = load_lesson("home.md")


def model_picker() -> None:
    if not course_ui.model_checked():
        # a link's model (?model=…) is loaded before Home names it: one that cannot load says so here,
        # and Home names only a model in use (and, served to others, does not read a folder it was sent to)
        with st.spinner("Loading the model the link names…"):
            course_ui.current_model()
    course_ui.model_picker(where=st)
    name = st.session_state.model_key
    config = folder_config(name)  # a folder model: read its config.json, load it when a lesson needs it
    if config is None:
        loaded = course_ui.current_model()
        name, config = loaded.name, loaded.model.config.to_dict()
    size = config_summary(config)
    shared = (f" sharing {size['kv_heads']} key/value heads" if size["kv_heads"] != size["heads"] else "")
    st.caption(f"In use: **{md_escape(course_ui.model_name(name))}**: {size['layers']} layers, {size['heads']} heads per layer{shared}, "
               f"width {size['width']}, context {size['context']:,} tokens, vocabulary {size['vocab']:,}.")
    course_ui.family_note(choice_for(name).family or config.get("model_type", ""), where=st)


def prompt_box() -> None:
    course_ui.prompt_box()
    examples = [text.strip() for text in home_lesson.meta.get("examples", "").split("|") if text.strip()]
    if examples:
        st.caption("Or start from an example:")
        for index, (column, example) in enumerate(zip(st.columns(len(examples)), examples)):
            column.button(example if len(example) < 40 else example[:37] + "…", key=f"example-{index}",
                          on_click=course_ui.set_prompt, args=(example,), help=example, width="stretch")
    first = COURSE[0]  # the map of the whole model, then the lessons in order, as the lesson list says
    if st.button(f"Start with {first.title[0].lower()}{first.title[1:]} →", type="primary"):
        st.switch_page(first.page)


def lesson_list() -> None:
    visited = st.session_state.get("visited", set())
    for entry in COURSE:
        lesson = load_lesson(entry.markdown)  # read once for its title, summary and questions
        title = f"{entry.number}. {lesson.title}"
        if entry.is_built:
            score = lesson.quiz_score(course_ui.answers(course_ui.lesson_key(entry.number)))
            progress = f" · *{score.right} of {score.total} questions right*" if score.answered else ""
            icon = ":material/check_circle:" if entry.number in visited else ":material/radio_button_unchecked:"
            st.page_link(entry.page, label=f"**{title}**: {lesson.summary}{progress}", icon=icon)
        else:
            st.markdown(f"**{title}**: {lesson.summary} *(coming soon)*")


def home() -> None:
    st.set_page_config(page_title="Glassbox GPT", page_icon="🔍", layout="wide")
    course_ui.init_state()
    course_ui.restore_kept_values()
    st.title(home_lesson.title)
    st.caption(home_lesson.summary)
    course_ui.render_lesson(home_lesson, {"model-picker": model_picker, "prompt-box": prompt_box,
                                          "lesson-list": lesson_list}, key="home")
    course_ui.share_in_address()  # after the picker: a link's model that could not load leaves the address
    course_ui.load_lesson_elements_early()
    course_ui.warm_up_in_background()


home_page = st.Page(home, title="Home", default=True)
course_ui.HOME_PAGE = home_page  # the lessons' "Course home" link names this page, not a file path
st.navigation([home_page]
              + [st.Page(entry.page, title=entry.title, url_path=entry.url_path) for entry in COURSE if entry.is_built]
              ).run()
