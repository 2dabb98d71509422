"""The suite's own set-up: the groups tests/conftest.py deals out reach pytest-xdist. xdist reads
an item's `xdist_group` into its test id while collecting; a group added after that is ignored
without a word, and the browser tests then started an app server per worker for nothing."""
from __future__ import annotations

import os

import pytest


@pytest.mark.skipif("PYTEST_XDIST_WORKER" not in os.environ, reason="the groups are pytest-xdist's: `pytest`, not `pytest -n 0`")
def test_a_test_sharing_an_expensive_fixture_runs_in_its_group(request, default_runs):
    assert request.node.nodeid.endswith("@default_runs")
