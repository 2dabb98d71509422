"""A real browser on the Llama-design course model and on links: every page renders on the
Llama-design course model, a shared link opens on its prompt, and the exported map opens on its
own with no server."""
from __future__ import annotations

import urllib.parse

from core.course import COURSE
from core.model_map import build_map
from core.models import load_model
from tests.streamlit_server import ARTIFACTS, browser_page, no_errors, require_browser, wait_until_idle

PAGE_PATHS = [entry.url_path for entry in COURSE]  # "The_model_map", "Tokenization", …
TITLES = {path: f"Lesson {entry.number} ·" for path, entry in zip(PAGE_PATHS, COURSE)}


def test_every_page_renders_on_the_llama_design_course_model(app_url):
    """tests/test_browser.py walks every page on the GPT-2-design course model, the default; here
    every page on the Llama-design one, opened by a link that names it."""
    model = "glassbox-stories-llama"
    with browser_page() as page:
        first = PAGE_PATHS[0]
        page.goto(f"{app_url}/{first}?model={model}")  # the link opens the course on the model...
        for path in PAGE_PATHS:
            if path != first:  # ...and the student goes on through the sidebar, in the same session
                page.locator(f'[data-testid="stSidebarNav"] a[href$="/{path}"]').first.click()
            page.get_by_text(TITLES[path]).first.wait_for(timeout=60_000)
            wait_until_idle(page)
            no_errors(page)
            assert page.locator('[data-testid="stSidebar"]').get_by_text(f"Using {model}").count() == 1, path
            if path == "Attention":
                ARTIFACTS.mkdir(exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / f"attention-{model}.png"), full_page=False)


def test_a_shared_link_opens_its_prompt_and_a_reload_keeps_it(app_url):
    from playwright.sync_api import expect

    prompt = "The dog ran to the park with his"
    with browser_page() as page:
        page.goto(f"{app_url}/Tokenization?prompt={urllib.parse.quote(prompt)}")  # any lesson: the link is the same
        box = page.get_by_role("textbox", name="Your prompt")
        expect(box).to_have_value(prompt, timeout=60_000)
        wait_until_idle(page)
        no_errors(page)
        page.locator(".gb-chip").first.wait_for(timeout=60_000)
        assert "Ġpark" in page.locator(".gb-chips").first.locator(".gb-tok").all_inner_texts()  # computed on it
        page.reload()  # a new session on the same address
        expect(page.get_by_role("textbox", name="Your prompt")).to_have_value(prompt, timeout=60_000)


def test_the_exported_map_opens_on_its_own(tmp_path):
    require_browser()
    from core.diagrams import model_map_figure

    html = model_map_figure(build_map(load_model("glassbox-stories-llama").model), "map").to_html(
        include_plotlyjs=True, full_html=True)
    (tmp_path / "map.html").write_text(html, encoding="utf-8")
    with browser_page() as page:
        page.route("http*://**", lambda route: route.abort())  # no network, no server: the file alone
        page.goto((tmp_path / "map.html").as_uri())
        page.locator(".js-plotly-plot .scatterlayer path.point").first.wait_for(state="attached", timeout=30_000)
        assert page.locator(".js-plotly-plot .scatterlayer path.point").count() > 20
