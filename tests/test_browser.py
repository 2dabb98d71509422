"""A real browser: headless Chromium against `streamlit run Home.py`."""
from __future__ import annotations

from pathlib import Path

import pytest

from core.models import load_model
from core.tokenization import prompt_tokens
from tests.streamlit_server import browser_page, chromium_path, running_app, start_training_run, wait_until_idle

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
PROMPT = "The cat sat on the mat."


def no_errors(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0
    errors = page.locator('[data-testid="stAlertContentError"]')
    assert errors.count() == 0, errors.all_inner_texts()


def test_enter_a_prompt_on_home_and_see_its_tokens():
    if chromium_path() is None:
        pytest.fail("Debian's chromium is needed for the browser test: apt-get install chromium")
    ARTIFACTS.mkdir(exist_ok=True)
    with running_app() as (url, _, _), browser_page() as page:
        page.goto(url)
        page.get_by_text("The lessons").first.wait_for(timeout=60_000)
        wait_until_idle(page)
        no_errors(page)
        box = page.get_by_role("textbox", name="Your prompt")
        box.fill(PROMPT)
        box.press("Control+Enter")
        wait_until_idle(page)
        page.get_by_role("button", name="Start with lesson 1").click()
        page.locator(".gb-chip").first.wait_for(timeout=60_000)
        wait_until_idle(page)
        assert page.get_by_role("textbox", name="Your prompt").input_value() == PROMPT
        chips = page.locator(".gb-chips").first.locator(".gb-tok").all_inner_texts()
        expected = [t.symbols for t in prompt_tokens(load_model("glassbox-stories").tokenizer, PROMPT)]
        assert chips == expected and "Ġcat" in chips
        no_errors(page)
        page.screenshot(path=str(ARTIFACTS / "tokenization.png"), full_page=False)

        # the later lessons, reached through the sidebar in the same session, each with its main figure
        for link, main_figure, shot in (
                ("Embeddings", "svg .gtitle >> text=token embedding matrix", "embeddings.png"),
                ("Positional encoding", "svg .gtitle >> text=input to block 0", "positions.png"),
                ("Attention", "svg g.sankey", "attention.png"),
                ("Feed forward", "svg .gtitle >> text=Direct contributions to the logit", "feed_forward.png"),
                ("Sampling", "svg g.sankey", "sampling.png")):
            page.get_by_role("link", name=link, exact=True).first.click()
            page.locator(main_figure).first.wait_for(timeout=60_000)
            wait_until_idle(page)
            assert page.get_by_role("textbox", name="Your prompt").input_value() == PROMPT
            no_errors(page)
            page.screenshot(path=str(ARTIFACTS / shot), full_page=False)


def loss_points(page) -> int:
    """How many training-loss points the live loss chart has drawn."""
    return page.evaluate("""() => {
        for (const plot of document.querySelectorAll('.js-plotly-plot')) {
            const title = plot.layout && plot.layout.title && plot.layout.title.text;
            if (title && title.includes('Loss while training')) return plot.data[0].x.length;
        }
        return -1;
    }""")


def test_start_a_training_run_see_the_loss_chart_update_and_stop_it():
    import re

    if chromium_path() is None:
        pytest.fail("Debian's chromium is needed for the browser test: apt-get install chromium")
    ARTIFACTS.mkdir(exist_ok=True)
    with running_app() as (url, _, _), browser_page() as page:
        start_training_run(page, url)
        first = loss_points(page)
        page.wait_for_function("() => document.body.innerText.includes('running: step')", timeout=30_000)
        page.wait_for_timeout(4_000)
        later = loss_points(page)
        assert later > first >= 0, (first, later)  # the chart keeps redrawing with new steps
        no_errors(page)
        page.screenshot(path=str(ARTIFACTS / "training.png"), full_page=False)
        page.get_by_role("button", name="Stop", exact=True).click()
        page.get_by_text(re.compile(r"^stopped: step")).first.wait_for(timeout=10_000)
        stopped_at = loss_points(page)
        page.wait_for_timeout(2_500)
        assert loss_points(page) == stopped_at  # nothing trains any more
        page.get_by_role("button", name="Download the model (zip, Hugging Face format)").wait_for(timeout=10_000)
        no_errors(page)


def test_pick_a_model_folder_in_the_picker(tmp_path):
    """The folder choice of the model picker, clicked and typed as a student does it."""
    import shutil

    from core.models import BUNDLED_MODEL_DIR

    folder = tmp_path / "my-model"
    shutil.copytree(BUNDLED_MODEL_DIR, folder)

    if chromium_path() is None:
        pytest.fail("Debian's chromium is needed for the browser test: apt-get install chromium")
    with running_app() as (url, _, _), browser_page() as page:
        page.goto(url)
        page.get_by_text("The lessons").first.wait_for(timeout=60_000)
        wait_until_idle(page)
        page.locator('[data-testid="stSelectbox"]').first.click()
        page.get_by_role("option", name="A model folder on this computer…").click()
        box = page.get_by_role("textbox", name="Folder with a GPT-2 model (config.json, weights, tokenizer)")
        box.fill(str(folder))
        box.press("Enter")
        page.get_by_text(f"In use: {folder}").first.wait_for(timeout=60_000)
        wait_until_idle(page)
        no_errors(page)
        page.get_by_role("link", name="Attention", exact=True).first.click()
        page.locator("svg g.sankey").first.wait_for(timeout=60_000)
        wait_until_idle(page)
        assert page.get_by_text(f"Using {folder}").count() == 1  # the lesson runs on the chosen folder
        no_errors(page)
