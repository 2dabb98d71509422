"""Every lesson page renders on every family the glass box reads: a tiny random model of each
(every weight perturbed), saved to a temporary folder with the course tokenizer and opened
through the folder path a student uses, with the default prompt and a hostile one."""
from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from core.course import APP_DIR, LESSONS
from core.models import BUNDLED_MODEL_DIR
from tests.streamlit_server import open_every_section
from tests.test_app import HOSTILE_PROMPTS, assert_healthy, assert_sent_as_plotly_checks_it
from tests.tiny_models import tiny_model

# one variant per family, each with its family's distinctive switches
FAMILY_VARIANTS = ["gpt2", "openai-gpt", "gpt-neo-local3", "gptj-rotary-quarter", "neox-parallel-quarter",
                   "llama-gqa2", "qwen2-window", "mistral-window"]
LESSON_PAGES = [entry.page for entry in LESSONS if entry.is_built]


@pytest.fixture(scope="module")
def family_folders(tmp_path_factory) -> dict[str, str]:
    from core.hf import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(BUNDLED_MODEL_DIR)
    folders = {}
    for variant in FAMILY_VARIANTS:
        folder = tmp_path_factory.mktemp("family") / variant
        tiny_model(variant, vocab_size=len(tokenizer)).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        folders[variant] = str(folder)
    return folders


@pytest.mark.parametrize("page", LESSON_PAGES)
@pytest.mark.parametrize("variant", FAMILY_VARIANTS)
def test_every_lesson_renders_on_every_family(variant, page, family_folders):
    app = AppTest.from_file(str(APP_DIR / "Home.py"), default_timeout=90)
    app.session_state["model_key"] = family_folders[variant]
    open_every_section(app)  # every figure, those drawn on request too
    app.run()
    app.switch_page(page).run()
    assert app.session_state["model_key"] == family_folders[variant]  # it did not fall back to the course model
    assert not app.error, [e.value for e in app.error]
    assert_healthy(app)
    assert_sent_as_plotly_checks_it(app)  # each family's own figures (its wiring, its head groups, rotary)
    app.session_state["prompt"] = HOSTILE_PROMPTS["script"]
    app.run()
    assert not app.error, [e.value for e in app.error]
    assert_healthy(app)
