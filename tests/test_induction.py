"""The induction test's pieces (core.induction) on hand-made inputs, and lesson 4's circuit view:
one click repeats the prompt; on the course model the page names the circuit's two heads and the
losses it shows, as trained and with either head off, are the glass box's own; on a model with
no circuit it says so and offers, in one click, a bundled model that has one."""
from __future__ import annotations

import re

import pytest
import torch

from core.induction import (InductionTest, copyable_positions, find_circuit, repeat_documents, repeated_prompt,
                            repeated_random_tokens)


def test_a_repeated_run_is_the_same_tokens_twice_from_the_pool():
    run = repeated_random_tokens([7, 8, 9], 5, torch.Generator().manual_seed(0))
    assert len(run) == 10 and run[:5] == run[5:] and set(run) <= {7, 8, 9}


def test_repeat_documents_are_end_of_text_then_a_run_and_its_repeat():
    ids = repeat_documents(list(range(10, 60)), 500, eos_token_id=0, seed=1, shortest=3, longest=6).tolist()
    assert len(ids) >= 500
    assert ids[0] == 0
    starts = [i for i, token in enumerate(ids) if token == 0] + [len(ids)]  # each document after an end-of-text
    for start, end in zip(starts, starts[1:]):
        tokens = ids[start + 1:end]
        half = len(tokens) // 2
        assert 3 <= half <= 6 and tokens[:half] == tokens[half:]
    assert ids == repeat_documents(list(range(10, 60)), 500, 0, seed=1, shortest=3, longest=6).tolist()  # seeded


def test_copyable_positions_are_where_the_earlier_copy_gives_the_next_token():
    #        0  1  2  3  4  5  6
    ids = [5, 6, 7, 5, 6, 7, 9]
    # at 3 (5): the earlier 5 was followed by 6, and 6 follows here too; at 4 (6) the same; at 5 (7):
    # the earlier 7 was followed by 5, but 9 follows here
    assert copyable_positions(ids) == [3, 4]
    assert copyable_positions([1, 2, 3]) == []
    assert repeated_prompt("One day, Mia  ") == "One day, Mia One day, Mia"


def test_the_circuit_is_the_best_induction_head_fed_by_an_earlier_previous_token_head():
    induction = torch.tensor([[0.9, 0.0], [0.1, 0.6], [0.0, 0.2]])  # [layer, head]: layer 0 cannot compose
    previous = torch.tensor([[0.1, 0.8], [0.0, 0.0], [0.95, 0.0]])  # the best, in layer 2, comes too late
    circuit = find_circuit(InductionTest(induction, previous, 5.0, 1.0))
    assert circuit.induction_head == (1, 1) and circuit.induction_score == pytest.approx(0.6)
    assert circuit.previous_token_head == (0, 1) and circuit.previous_token_score == pytest.approx(0.8)
    assert find_circuit(InductionTest(induction[:1], previous[:1], 5.0, 5.0)) is None


def circuit_losses(app) -> tuple[str, ...]:
    """The page's mean losses over the shaded predictions: as trained, induction head off, previous-token head
    off, with the heads it names."""
    said = next(c.value for c in app.caption if c.value.startswith("Mean loss over the"))
    return re.fullmatch(
        r"Mean loss over the (\d+) shaded predictions: (\d+\.\d+) as trained, (\d+\.\d+) (?:best candidate for )?"
        r"induction head off \((\d)\.(\d)\), (\d+\.\d+) (?:best candidate for )?previous-token head off "
        r"\((\d)\.(\d)\)\.", said).groups()


def assert_losses_are_the_glass_boxs(app, loaded, ids: list[int], copied: list[int]) -> float:
    """Each mean loss the page shows, computed here from the glass box with the same head switched off; returns
    the ratio of the loss as trained to the loss with the previous-token head off."""
    from core.glassbox import Interventions, run_trace
    from core.induction import token_losses

    count, trained, induction_off, i_layer, i_head, previous_off, p_layer, p_head = circuit_losses(app)
    assert int(count) == len(copied)
    for shown, heads in ((trained, frozenset()), (induction_off, {(int(i_layer), int(i_head))}),
                         (previous_off, {(int(p_layer), int(p_head))})):
        losses = token_losses(run_trace(loaded.model, ids, interventions=Interventions(frozenset(heads)))["logits"], ids)
        assert float(shown) == round(float(losses[copied].mean()), 2)
    return float(trained) / float(previous_off)


def test_lesson_4_repeats_the_prompt_in_one_click_and_measures_the_copying_on_the_model_in_hand(tmp_path):
    import json

    from streamlit.testing.v1 import AppTest

    from core.build_course_model import MODEL_DIR
    from core.course import APP_DIR, LESSONS
    from core.models import load_model
    from core.tokenization import prompt_tokens
    from tests.conftest import random_gpt2
    from tests.streamlit_server import open_every_section

    app = AppTest.from_file(str(APP_DIR / "Home.py"), default_timeout=90).run()
    words = "dog her white went your coat goat school hat garden"  # the lesson's suggested words, once
    app.session_state["prompt"] = words
    open_every_section(app)  # the build's record is drawn on request
    app.switch_page(LESSONS[3].page).run()
    assert not app.exception
    assert any("Nothing in your prompt repeats yet" in c.value for c in app.caption)
    # the course model has a circuit, and the page names its heads with the test's own numbers
    card = json.loads((MODEL_DIR / "evaluation.json").read_text())["induction"]
    (p_layer, p_head), (i_layer, i_head) = card["previous_token_head"], card["induction_head"]
    assert any(f"layer {p_layer}, head {p_head} is its previous-token head ({card['previous_token_score']:.2f}), "
               f"layer {i_layer}, head {i_head} its induction head ({card['induction_score']:.2f})" in c.value
               for c in app.caption)
    assert not any("finds no induction circuit" in w.value for w in app.info)
    assert not any(b.key == "attn-circuit-model" for b in app.button)  # no switch offered from a model that has one
    # the build's record of the circuit growing: the model in hand's own
    loaded = load_model("glassbox-stories")
    growth = [json.loads(c.proto.spec) for c in app.get("plotly_chart")
              if "How the circuit of" in json.loads(c.proto.spec)["layout"]["title"]["text"]]
    assert len(growth) == 1 and "circuit of glassbox-stories grew" in growth[0]["layout"]["title"]["text"]
    assert growth[0]["data"][0]["y"] == [entry["induction_score"] for entry in loaded.induction_history]
    assert [a["text"] for a in growth[0]["layout"]["annotations"][1:]] == ["16-token examples",
                                                                          "examples grow to 128 tokens"]
    app.button(key="attn-repeat").click().run()
    repeated = f"{words} {words}"
    assert app.session_state["prompt"] == repeated
    ids = [t.id for t in prompt_tokens(loaded.tokenizer, repeated)]
    copied = copyable_positions(ids)  # the second copy's predictions whose next token the first copy gives
    assert len(copied) >= len(words.split()) - 2
    assert circuit_losses(app)[3:5] == (str(i_layer), str(i_head))
    # the circuit copies the student's repeat, and breaks without its previous-token head
    assert assert_losses_are_the_glass_boxs(app, loaded, ids, copied) < 0.5
    assert not app.exception

    # a model with no circuit (random weights): the page says so, names only candidates, and one click
    # moves to a bundled model that has one
    folder = tmp_path / "random"
    random_gpt2(n_layer=2, n_head=2, n_embd=32, n_positions=128,
                vocab_size=len(loaded.tokenizer)).save_pretrained(folder)
    loaded.tokenizer.save_pretrained(folder)
    app.session_state["model_key"] = str(folder)
    app.run()
    assert app.session_state["model_key"] == str(folder) and not app.exception
    assert any("finds no induction circuit" in w.value for w in app.info)
    assert circuit_losses(app)  # the candidates' losses, named as candidates
    assert "best candidate for induction head off" in next(c.value for c in app.caption
                                                           if c.value.startswith("Mean loss over the"))
    growth = [json.loads(c.proto.spec) for c in app.get("plotly_chart")
              if "How the circuit of" in json.loads(c.proto.spec)["layout"]["title"]["text"]]
    assert len(growth) == 1 and "glassbox-stories" in growth[0]["layout"]["title"]["text"]  # a bundled model's record
    app.button(key="attn-circuit-model").click().run()
    assert app.session_state["model_key"] == "glassbox-stories" and not app.exception
    assert not any("finds no induction circuit" in w.value for w in app.info)
    assert not any(b.key == "attn-circuit-model" for b in app.button)  # no switch offered from a model that has one
