"""The Llama-design course model: its card says what it measures today, it passes the same probes
as the GPT-2-design one, it shares that model's tokenizer, and both fit the size budget."""
from __future__ import annotations

import json

import pytest

from core.build_course_model import MODEL_DIR, MODERN_MODEL_DIR
from core.evaluate_course_model import evaluate, model_card
from tests.test_course_model_card import REQUIRED, assert_same_induction


@pytest.fixture(scope="module")
def stored() -> dict:
    if not (MODERN_MODEL_DIR / "evaluation.json").is_file():
        pytest.fail("the Llama-design course model is missing: run `python -m core.build_course_model --architecture "
                    "llama` then `python -m core.evaluate_course_model --model models/glassbox-stories-llama`")
    return json.loads((MODERN_MODEL_DIR / "evaluation.json").read_text())


@pytest.fixture(scope="module")
def measured(stored) -> dict:
    return evaluate(MODERN_MODEL_DIR)


def test_the_modern_card_is_what_the_model_measures_today(stored, measured):
    assert measured["p_mat"] == pytest.approx(stored["p_mat"], abs=1e-5)
    for kind, figures in stored["probes"].items():
        assert measured["probes"][kind]["accuracy"] == pytest.approx(figures["accuracy"], abs=1e-9)
    assert [(layer, head) for _, layer, head in measured["name_heads"]] == \
        [(layer, head) for _, layer, head in stored["name_heads"]]
    assert measured["name_accuracy_with_ablation"] == pytest.approx(stored["name_accuracy_with_ablation"], abs=1e-9)
    assert_same_induction(measured["induction"], stored["induction"])
    training = json.loads((MODERN_MODEL_DIR / "training.json").read_text())
    assert (MODERN_MODEL_DIR / "README.md").read_text() == model_card(training, stored)


def test_the_modern_model_passes_the_same_probes(measured):
    assert measured["p_mat"] >= REQUIRED["mat"]
    for kind in ("name", "pronoun", "object"):
        assert measured["probes"][kind]["accuracy"] >= REQUIRED[kind], kind


def test_it_is_the_modern_design_on_the_same_tokens_and_both_fit_in_10_mb():
    config = json.loads((MODERN_MODEL_DIR / "config.json").read_text())
    assert config["model_type"] == "llama" and config["num_key_value_heads"] < config["num_attention_heads"]
    assert (MODERN_MODEL_DIR / "tokenizer.json").read_bytes() == (MODEL_DIR / "tokenizer.json").read_bytes()
    size = sum(f.stat().st_size for folder in (MODEL_DIR, MODERN_MODEL_DIR) for f in folder.iterdir())
    assert size <= 10 * 1024 * 1024


def test_the_attention_lesson_quotes_the_modern_cards_heads_and_ablations(stored):
    from tests.conftest import lesson_text, quoted

    text = lesson_text("04_attention.md")
    (l1, h1), (l2, h2) = [(layer, head) for _, layer, head in stored["name_heads"][:2]]
    *heads, least = quoted(r"name in its last layers: layer (\d), head (\d) and layer (\d), head (\d), each with over "
                           r"(\d+)% of its attention", text)
    assert tuple(int(n) for n in heads) == (l1, h1, l2, h2)
    assert min(score for score, _, _ in stored["name_heads"][:2]) > int(least) / 100
    one, both = quoted(r"Switch off the best one and the name is still right (\d+)% of the\s+time.*falls to (\d+)%", text)
    accuracy = stored["name_accuracy_with_ablation"]
    assert f"{accuracy[f'layer {l1} head {h1}']:.0%}" == f"{one}%"
    assert f"{accuracy[' and '.join(f'layer {l} head {h}' for l, h in sorted([(l1, h1), (l2, h2)]))]:.0%}" == f"{both}%"
    layer, head, share = quoted(r"A third head, layer (\d), head (\d), also puts ([\d.]+) of its attention", text)
    assert [f"{score:.2f}" for score, l, h in stored["name_heads"][2:3] if (l, h) == (int(layer), int(head))] == [share]
