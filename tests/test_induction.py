"""The induction test's pieces (core.induction) on hand-made inputs, and lesson 4's circuit view on
the course models: one click repeats the prompt, the page says the GPT-2-design model has no
circuit and offers the Llama-design one, which has; the losses it shows, as trained and with
either head off, are the glass box's own."""
from __future__ import annotations

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


def test_lesson_4_repeats_the_prompt_in_one_click_and_measures_the_copying_on_the_model_in_hand():
    import json
    import re

    from streamlit.testing.v1 import AppTest

    from core.course import APP_DIR, LESSONS
    from core.glassbox import Interventions, run_trace
    from core.induction import token_losses
    from core.models import load_model
    from core.tokenization import prompt_tokens

    from tests.conftest import open_every_section

    app = AppTest.from_file(str(APP_DIR / "Home.py"), default_timeout=90).run()
    app.session_state["prompt"] = "red kite hill sock zoo Mia drum lake"
    open_every_section(app)  # the build's record is drawn on request
    app.switch_page(LESSONS[3].page).run()
    assert not app.exception
    assert any("Nothing in your prompt repeats yet" in c.value for c in app.caption)
    # the course model has no circuit, and the page says so with the card's own numbers
    warning = next(w.value for w in app.info if "finds no induction circuit" in w.value)
    assert "layer 3, head 3, puts only 0.02" in warning and "from 15.99 to 16.21 nats" in warning
    # the build's record of the circuit growing: the Llama-design model's (the model in hand has none)
    modern = load_model("glassbox-stories-llama")
    growth = [json.loads(c.proto.spec) for c in app.get("plotly_chart")
              if "circuit grew" in json.loads(c.proto.spec)["layout"]["title"]["text"]]
    assert len(growth) == 1 and "glassbox-stories-llama" in growth[0]["layout"]["title"]["text"]
    assert growth[0]["data"][0]["y"] == [entry["induction_score"] for entry in modern.induction_history]
    assert growth[0]["data"][1]["y"] == [entry["repeat_loss_ratio"] for entry in modern.induction_history]
    assert load_model("glassbox-stories").induction_history == []
    app.button(key="attn-repeat").click().run()
    repeated = "red kite hill sock zoo Mia drum lake red kite hill sock zoo Mia drum lake"
    assert app.session_state["prompt"] == repeated
    said = next(c.value for c in app.caption if c.value.startswith("Mean loss over the"))
    count, trained, induction_off, previous_off = re.fullmatch(
        r"Mean loss over the (\d+) shaded predictions: (\d+\.\d+) as trained, (\d+\.\d+) best candidate for "
        r"induction head off \(3\.3\), (\d+\.\d+) best candidate for previous-token head off \(0\.0\)\.", said).groups()
    # the same numbers computed here from the glass box, not read from the page
    loaded = load_model("glassbox-stories")
    ids = [t.id for t in prompt_tokens(loaded.tokenizer, repeated)]
    # the second copy's predictions, but for its first token (" red", with a space, never seen before:
    # the first copy begins "red") and its last (nothing follows it)
    assert ids[len(ids) // 2] != ids[0] and ids[len(ids) // 2 + 1:] == ids[1:len(ids) // 2]
    copied = list(range(len(ids) // 2 + 1, len(ids) - 1))
    assert int(count) == len(copied)
    for shown, heads in ((trained, frozenset()), (induction_off, {(3, 3)}), (previous_off, {(0, 0)})):
        losses = token_losses(run_trace(loaded.model, ids, interventions=Interventions(frozenset(heads)))["logits"], ids)
        assert float(shown) == round(float(losses[copied].mean()), 2)
    assert not app.exception

    # one click moves to the bundled model that has a circuit; the page names its heads, and
    # switching off the previous-token head undoes the copying on the student's own repeat
    app.button(key="attn-circuit-model").click().run()
    assert app.session_state["model_key"] == "glassbox-stories-llama" and not app.exception
    assert not any("finds no induction circuit" in w.value for w in app.info)
    assert any("layer 0, head 0 is its previous-token head (0.99), layer 1, head 0 its induction head (0.89)"
               in c.value for c in app.caption)
    said = next(c.value for c in app.caption if c.value.startswith("Mean loss over the"))
    count, trained, induction_off, previous_off = re.fullmatch(
        r"Mean loss over the (\d+) shaded predictions: (\d+\.\d+) as trained, (\d+\.\d+) induction head off "
        r"\(1\.0\), (\d+\.\d+) previous-token head off \(0\.0\)\.", said).groups()
    for shown, heads in ((trained, frozenset()), (induction_off, {(1, 0)}), (previous_off, {(0, 0)})):
        losses = token_losses(run_trace(modern.model, ids, interventions=Interventions(frozenset(heads)))["logits"], ids)
        assert float(shown) == round(float(losses[copied].mean()), 2)
    assert float(trained) < 0.5 * float(previous_off)  # the circuit copies the student's repeat, and breaks without it
    assert not any(b.key == "attn-circuit-model" for b in app.button)  # no switch offered from a model that has one
