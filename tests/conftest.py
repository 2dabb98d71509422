"""Shared fixtures: small random GPT-2 models (never the network) and the bundled model."""
from __future__ import annotations

import re

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from core.lessons import LESSONS_DIR
from core.models import BUNDLED_MODEL_DIR, load_model


@pytest.fixture(autouse=True, scope="session")
def full_error_details():
    """AppTest reads .streamlit/config.toml, which hides error messages from students; a failing
    test should show them."""
    from streamlit import config

    config.set_option("client.showErrorDetails", "full")
    yield


def lesson_text(file_name: str) -> str:
    """A lesson file's words with its line breaks folded into spaces, to find a quoted sentence in."""
    return " ".join((LESSONS_DIR / file_name).read_text(encoding="utf-8").split())


def quoted(pattern: str, text: str) -> tuple[str, ...]:
    """What a lesson sentence quotes, as written (a number's decimals say how it was rounded)."""
    found = re.search(pattern, text)
    assert found is not None, f"the lesson no longer says: {pattern}"
    return found.groups()


def random_gpt2(n_layer=2, n_head=2, n_embd=32, n_positions=64, vocab_size=100, seed=0, **extra) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    config = GPT2Config(n_layer=n_layer, n_head=n_head, n_embd=n_embd, n_positions=n_positions,
                        vocab_size=vocab_size, attn_implementation="eager", **extra)
    model = GPT2LMHeadModel(config)
    model.eval()
    return model


@pytest.fixture(scope="session")
def bundled():
    if not (BUNDLED_MODEL_DIR / "config.json").is_file():
        pytest.fail(f"the bundled model is missing: run `python -m core.build_course_model` ({BUNDLED_MODEL_DIR})")
    return load_model("glassbox-stories")
