"""The suite's own set-up: the groups tests/conftest.py deals out reach pytest-xdist. xdist reads
an item's `xdist_group` into its test id while collecting; a group added after that is ignored
without a word, and the browser tests then started an app server per worker for nothing."""
from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.mark.skipif("PYTEST_XDIST_WORKER" not in os.environ, reason="the groups are pytest-xdist's: `pytest`, not `pytest -n 0`")
def test_a_test_sharing_an_expensive_fixture_runs_in_its_group(request, default_runs):
    assert request.node.nodeid.endswith("@default_runs")


@pytest.mark.skipif("PYTEST_XDIST_WORKER" not in os.environ, reason="the shared server is pytest-xdist's: `pytest`, not `pytest -n 0`")
def test_the_workers_browser_tests_drive_the_one_app_server_the_controller_started(request, app_url):
    """tests/conftest.py: the controller starts one app server and hands its address to every worker
    (a hook that no longer ran would leave each worker starting a server of its own, silently)."""
    import urllib.request

    from tests.conftest import SHARED_APP

    assert app_url == request.config.workerinput[SHARED_APP]
    with urllib.request.urlopen(f"{app_url}/_stcore/health", timeout=10) as reply:
        assert reply.read().strip() == b"ok"


def test_a_failed_browser_test_leaves_its_screen_and_its_text_under_one_name(monkeypatch, tmp_path):
    """What is saved when a browser test fails (tests/conftest.py, tests.streamlit_server): the
    address, the error boxes first, then the page's text; test ids carry brackets and dots, and the
    screenshot and the text share one name."""
    from tests import streamlit_server

    class ShownPage:
        url = "http://127.0.0.1:1/Training"

        def screenshot(self, path, full_page):
            assert full_page
            Path(path).write_bytes(b"png")

        def locator(self, selector):
            assert "stException" in selector
            return type("Boxes", (), {"all_inner_texts": lambda boxes: ["TypeError: '<=' not supported"]})()

        def inner_text(self, selector):
            return "Lesson 7 · Training\nTypeError: '<=' not supported"

    monkeypatch.setattr(streamlit_server, "ARTIFACTS", tmp_path)
    shown = streamlit_server.save_failed_page(ShownPage(), "test_page_survives[pages/4_Attention.py-empty]")
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "failed-test_page_survives-pages-4_Attention.py-empty-.png", "failed-test_page_survives-pages-4_Attention.py-empty-.txt"]
    text = (tmp_path / "failed-test_page_survives-pages-4_Attention.py-empty-.txt").read_text(encoding="utf-8")
    assert text == shown == ("http://127.0.0.1:1/Training\n\nerror box: TypeError: '<=' not supported\n\n"
                             "Lesson 7 · Training\nTypeError: '<=' not supported")  # (the report shows it too)


def test_a_failed_browser_test_reports_the_app_servers_last_traceback(monkeypatch, tmp_path):
    """On a CI machine only the report is kept: it carries the end of the server log's last traceback."""
    from tests import streamlit_server

    monkeypatch.setattr(streamlit_server, "ARTIFACTS", tmp_path)
    (tmp_path / "server-8765.log").write_text(
        "  You can now view your Streamlit app\nTraceback (most recent call last):\n  old\nValueError: first\n"
        "ready\nTraceback (most recent call last):\n  File \"course_ui.py\"\nTypeError: second\n", encoding="utf-8")
    assert streamlit_server.server_traceback("http://127.0.0.1:8765") == \
        'Traceback (most recent call last):\n  File "course_ui.py"\nTypeError: second\n'
    assert streamlit_server.server_traceback("http://127.0.0.1:8765", most=18) == "TypeError: second\n"
    (tmp_path / "server-8766.log").write_text("  You can now view your Streamlit app\n", encoding="utf-8")
    assert streamlit_server.server_traceback("http://127.0.0.1:8766") == ""
    assert streamlit_server.server_traceback("http://127.0.0.1:8767") == ""  # no log: the server was not ours
