"""The bundled model's card says what the model does now, and the lessons quote the card rightly."""
from __future__ import annotations

import json
import re

import pytest

from core.build_course_model import MODEL_DIR
from core.evaluate_course_model import evaluate, model_card
from core.lessons import LESSONS_DIR

REQUIRED = {"mat": 0.5, "name": 0.95, "pronoun": 0.8, "object": 0.8}  # issue 2, section 4


@pytest.fixture(scope="module")
def stored() -> dict:
    return json.loads((MODEL_DIR / "evaluation.json").read_text())


@pytest.fixture(scope="module")
def measured() -> dict:
    return evaluate(MODEL_DIR)


def test_the_card_is_what_the_model_measures_today(stored, measured):
    assert measured["p_mat"] == pytest.approx(stored["p_mat"], abs=1e-5)
    for kind, figures in stored["probes"].items():
        assert measured["probes"][kind]["cases"] == figures["cases"]
        assert measured["probes"][kind]["accuracy"] == pytest.approx(figures["accuracy"], abs=1e-9)
        assert measured["probes"][kind]["mean_probability"] == pytest.approx(figures["mean_probability"], abs=1e-5)
    assert [(layer, head) for _, layer, head in measured["name_heads"]] == \
        [(layer, head) for _, layer, head in stored["name_heads"]]
    for (score, _, _), (stored_score, _, _) in zip(measured["name_heads"], stored["name_heads"]):
        assert score == pytest.approx(stored_score, abs=1e-5)
    assert measured["name_accuracy_with_ablation"] == pytest.approx(stored["name_accuracy_with_ablation"], abs=1e-9)
    training = json.loads((MODEL_DIR / "training.json").read_text())
    assert (MODEL_DIR / "README.md").read_text() == model_card(training, stored)


def test_the_model_passes_every_probe_the_foundation_issue_asks_for(measured):
    assert measured["p_mat"] >= REQUIRED["mat"]
    for kind in ("name", "pronoun", "object"):
        assert measured["probes"][kind]["accuracy"] >= REQUIRED[kind], kind


def test_the_attention_lesson_quotes_the_cards_heads_and_ablations(stored):
    text = " ".join((LESSONS_DIR / "04_attention.md").read_text().split())
    (_, first_layer, first_head), (_, second_layer, second_head) = stored["name_heads"][:2]
    assert first_layer == second_layer
    low, high = sorted((first_head, second_head))
    assert f"two heads of layer {first_layer} (heads {low} and {high})" in text
    assert f"look at the last row of layer {first_layer}, head {first_head}" in text
    accuracy = list(stored["name_accuracy_with_ablation"].values())  # none, the best head, the best two
    quoted = re.search(r"name accuracy (\d+)% with both, about (\d+)% with one ablated, and about (\d+)% "
                       r"with both ablated", text)
    assert quoted is not None
    assert [int(n) for n in quoted.groups()] == [round(100 * a) for a in accuracy]
