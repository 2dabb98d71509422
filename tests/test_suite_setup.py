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


def test_a_failed_browser_test_leaves_its_screen_and_its_text_under_one_name(monkeypatch, tmp_path):
    """What tests/conftest.py's `page` saves when a browser test fails (tests.streamlit_server): test
    ids carry brackets and dots, and the screenshot and the text share one name."""
    from tests import streamlit_server

    class ShownPage:
        url = "http://127.0.0.1:1/Training"

        def screenshot(self, path, full_page):
            assert full_page
            Path(path).write_bytes(b"png")

        def inner_text(self, selector):
            return "TypeError: '<=' not supported"

    monkeypatch.setattr(streamlit_server, "ARTIFACTS", tmp_path)
    streamlit_server.save_failed_page(ShownPage(), "test_page_survives[pages/4_Attention.py-empty]")
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "failed-test_page_survives-pages-4_Attention.py-empty-.png", "failed-test_page_survives-pages-4_Attention.py-empty-.txt"]
    text = (tmp_path / "failed-test_page_survives-pages-4_Attention.py-empty-.txt").read_text(encoding="utf-8")
    assert text == "http://127.0.0.1:1/Training\n\nTypeError: '<=' not supported"
