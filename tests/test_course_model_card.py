"""The bundled model's card says what the model does now, and the lessons quote the card rightly."""
from __future__ import annotations

import json

import pytest

from core.build_course_model import MODEL_DIR
from core.evaluate_course_model import evaluate, model_card
from core.induction import FOUND_LOSS_RATIO
from tests.conftest import lesson_text

REQUIRED = {"mat": 0.5, "name": 0.95, "pronoun": 0.8, "object": 0.8}  # issue 2, section 4


@pytest.fixture(scope="module")
def stored() -> dict:
    return json.loads((MODEL_DIR / "evaluation.json").read_text())


@pytest.fixture(scope="module")
def measured() -> dict:
    return evaluate(MODEL_DIR)


def assert_same_induction(measured: dict, stored: dict) -> None:
    assert (measured["induction_head"], measured["previous_token_head"]) == \
        (stored["induction_head"], stored["previous_token_head"])
    for name in ("induction_score", "previous_token_score", "first_half_loss", "repeat_loss"):
        assert measured[name] == pytest.approx(stored[name], abs=1e-4), name
    assert measured["repeat_loss_with_ablation"] == pytest.approx(stored["repeat_loss_with_ablation"], abs=1e-4)
    assert [(layer, head) for _, layer, head in measured["induction_heads"]] == \
        [(layer, head) for _, layer, head in stored.get("induction_heads", [])]  # a card written before the list: none


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
    assert_same_induction(measured["induction"], stored["induction"])
    training = json.loads((MODEL_DIR / "training.json").read_text())
    assert (MODEL_DIR / "README.md").read_text() == model_card(training, stored)


def test_the_model_passes_every_probe_the_foundation_issue_asks_for(measured):
    assert measured["p_mat"] >= REQUIRED["mat"]
    for kind in ("name", "pronoun", "object"):
        assert measured["probes"][kind]["accuracy"] >= REQUIRED[kind], kind


def test_the_attention_lesson_quotes_the_cards_induction_circuit(stored, bundled):
    """Issue 16 asked for an induction circuit in the GPT-2-design course model; lesson 4 describes
    it in the card's numbers: the losses, the two heads, the other induction heads and the ablations."""
    import math

    from core.induction import FOUND_SCORE, test_token_pool
    from tests.conftest import quoted

    induction = stored["induction"]
    assert induction["induction_score"] >= FOUND_SCORE  # the card's verdict: a circuit
    text = lesson_text("04_attention.md")
    pool, uniform_pool, uniform, bar = quoted(
        r"50 tokens drawn at random from the (\d+) tokens that occur in the stories.*?the same probability for each of "
        r"the (\d+) tokens, costs \$\\ln \d+ = (\d+\.\d+)\$ nats.*?This course asks an induction head for a score of "
        r"at least ([\d.]+), and a circuit also for a repeat that costs less than half of the first half", text)
    loaded = bundled
    assert int(pool) == int(uniform_pool) == len(test_token_pool(loaded.tokenizer, loaded.seen_token_ids))
    assert float(uniform) == round(math.log(int(pool)), 2)
    assert float(bar) == FOUND_SCORE and FOUND_LOSS_RATIO == 0.5
    text = text[text.index("Both course models have a circuit too."):]
    first, repeat = quoted(r"the first half costs (\d+\.\d+) nats per token, about a uniform guess, and the repeat "
                           r"costs \*\*(\d+\.\d+)\*\*: the model copies", text)
    assert float(first) == round(induction["first_half_loss"], 2)
    assert float(repeat) == round(induction["repeat_loss"], 2)
    prev_layer, prev_head, prev_score, layer, head, score = quoted(
        r"Layer (\d), head (\d) is its previous-token head \(([\d.]+) of its attention on the token just before\), "
        r"and layer (\d), head (\d) its strongest induction head \(([\d.]+) of", text)
    assert [int(prev_layer), int(prev_head)] == induction["previous_token_head"]
    assert [int(layer), int(head)] == induction["induction_head"]
    assert (prev_score, score) == (f"{induction['previous_token_score']:.2f}", f"{induction['induction_score']:.2f}")
    count, bar, others = quoted(r"(\w+) more heads score at least ([\d.]+): (.*?)\. Switch off", text)
    listed = [(score, other_layer, other_head) for score, other_layer, other_head in induction["induction_heads"]
              if [other_layer, other_head] != induction["induction_head"]]
    assert float(bar) == FOUND_SCORE and count == {3: "Three"}[len(listed)]
    assert others == ", ".join(f"layer {other_layer}, head {other_head} ({score:.2f})"
                               for score, other_layer, other_head in listed[:-1]) + \
        f" and layer {listed[-1][1]}, head {listed[-1][2]} ({listed[-1][0]:.2f})"
    ablated = induction["repeat_loss_with_ablation"]
    without_previous, first_without, best_before, best_without = quoted(
        r"Switch off the previous-token head and the repeat costs ([\d.]+): the copying is gone\. The first half costs "
        r"about what it did \(([\d.]+)\), and the best induction score falls from ([\d.]+) to ([\d.]+)", text)
    (without_induction,) = quoted(r"Switch off the strongest induction head and the repeat costs ([\d.]+): worse, but "
                                  r"far from the first half's ([\d.]+)", text)[:1]
    assert without_previous == f"{ablated[f'layer {prev_layer} head {prev_head}']:.2f}"
    assert without_induction == f"{ablated[f'layer {layer} head {head}']:.2f}"
    assert float(without_induction) < FOUND_LOSS_RATIO * float(first) < float(without_previous)
    # the test run again with the previous-token head off: the first half as before, no head finds the copy
    from core.glassbox import Interventions
    from core.induction import induction_test

    test = induction_test(loaded.model, test_token_pool(loaded.tokenizer, loaded.seen_token_ids),
                          loaded.tokenizer.eos_token_id,
                          Interventions(ablated_heads=frozenset({(int(prev_layer), int(prev_head))})))
    assert f"{test.repeat_loss:.2f}" == without_previous and f"{test.first_half_loss:.2f}" == first_without
    assert best_before == score and f"{float(test.scores[1:].max()):.2f}" == best_without
    assert abs(test.first_half_loss - float(first)) < 0.2  # "about what it did"


def test_the_attention_lesson_tells_how_the_gpt2_designs_circuit_grew(stored):
    """The build's record (training.json): the growing windows, the last quiet step and the jump."""
    from core.build_course_model import warmup_window
    from core.induction import FOUND_SCORE
    from tests.conftest import quoted

    training = json.loads((MODEL_DIR / "training.json").read_text())
    corpus, config = training["corpus"], training["config"]
    history = {entry["step"]: entry["induction_score"] for entry in training["history"]}
    text = lesson_text("04_attention.md")
    window, first, context, last, total = quoted(
        r"whose examples \*\*grow\*\*: (\d+) tokens long until step ([\d,]+), then longer at every step until they "
        r"fill the whole context of (\d+) tokens at step ([\d,]+), and ([\d,]+) steps in all", text)
    assert int(window) == corpus["copy_warmup_window"] and int(context) == config["block_size"]
    assert [int(first.replace(",", "")), int(last.replace(",", ""))] == corpus["copy_warmup_window_growth"]
    assert int(total.replace(",", "")) == config["max_steps"] == corpus["copy_warmup_steps"]
    shortest, longest = quoted(r"the runs 2 to 7 tokens long and, beside them, (\d+) to (\d+), half of those random "
                               r"tokens and half stretches of the stories\)", text)
    assert [int(shortest), int(longest)] == corpus["copy_warmup_long_runs"] and corpus["copy_warmup_story_spans"]
    quiet, quiet_window, quiet_best, climb, formed_score, formed_at, later_score, later_at = quoted(
        r"Through step ([\d,]+), when the examples were (\d+) tokens long, its best induction score stays at or below "
        r"([\d.]+)\. Then it climbs over about ([\d,]+) steps: ([\d.]+) at step ([\d,]+), the first test at or above "
        r"[\d.]+, and ([\d.]+) at step ([\d,]+)\.", text)
    assert int(climb.replace(",", "")) == int(later_at.replace(",", "")) - int(quiet.replace(",", ""))
    quiet_step = int(quiet.replace(",", ""))
    assert int(quiet_window) == warmup_window(quiet_step, tuple(corpus["copy_warmup_window_growth"]),
                                              config["block_size"])
    assert quiet_best == f"{max(score for step, score in history.items() if step <= quiet_step):.2f}"
    formed_step = next(step for step, score in history.items() if score >= FOUND_SCORE)
    assert (int(formed_at.replace(",", "")), formed_score) == (formed_step, f"{history[formed_step]:.2f}")
    assert later_score == f"{history[int(later_at.replace(',', ''))]:.2f}"
    assert history[quiet_step + 100] > float(quiet_best)  # the quiet stretch ends where the lesson says
    gpt2_loss, llama_loss = quoted(r"their validation losses are ([\d.]+) \(GPT-2 design\) and ([\d.]+) \(Llama "
                                   r"design\)", text)
    twin = json.loads((MODEL_DIR.parent / "glassbox-stories-llama" / "training.json").read_text())
    assert (gpt2_loss, llama_loss) == (f"{training['history'][-1]['val_loss']:.3f}",
                                       f"{twin['history'][-1]['val_loss']:.3f}")


def test_the_training_lesson_quotes_the_gpt2_designs_jump():
    from tests.conftest import quoted

    training = json.loads((MODEL_DIR / "training.json").read_text())
    history = {entry["step"]: entry["induction_score"] for entry in training["history"]}
    before, start, after, end = quoted(r"The GPT-2-design course model grew one when its examples grew from 16 tokens "
                                       r"to the whole context, and its score climbed from ([\d.]+) at step ([\d,]+) "
                                       r"to ([\d.]+) at step ([\d,]+)", lesson_text("07_training.md"))
    assert before == f"{history[int(start.replace(',', ''))]:.2f}"
    assert after == f"{history[int(end.replace(',', ''))]:.2f}"


def test_the_attention_lesson_quotes_the_cards_head_and_ablation(stored):
    text = lesson_text("04_attention.md")
    best_score, layer, head = stored["name_heads"][0]
    second_score, second_layer, second_head = stored["name_heads"][1]
    assert f"one head, layer {layer}, head {head}, does a job you can watch" in text
    assert f"look at the last row of layer {layer}, head {head}" in text
    assert f"{best_score:.0%} of that head's attention goes to the earlier name" in text
    accuracy = stored["name_accuracy_with_ablation"]
    best, both = f"layer {layer} head {head}", " and ".join(
        f"layer {lh[0]} head {lh[1]}" for lh in sorted([(layer, head), (second_layer, second_head)]))
    assert (f"the name is still predicted right {accuracy[best]:.1%} of the time, over 200 stories. The other heads "
            f"of layer {layer} run alongside it, and layer {second_layer}, head {second_head} also puts "
            f"{second_score:.2f} of its attention on the earlier name. Switch off both and the name is right only "
            f"{accuracy[both]:.1%} of the time") in text
    assert accuracy[best] > 0.95 > 0.5 > accuracy[both]  # either is enough; without both the name is lost
    assert (f"its model card measures name accuracy {accuracy['none']:.1%} with every head, {accuracy[best]:.1%} with "
            f"layer {layer}, head {head} ablated, and {accuracy[both]:.1%} with layer {second_layer}, head {second_head} "
            f"ablated as well") in text
    # in both designs the name heads are induction heads as well
    for card in (stored, json.loads((MODEL_DIR.parent / "glassbox-stories-llama" / "evaluation.json").read_text())):
        induction_heads = {(h_layer, h_head) for _, h_layer, h_head in card["induction"]["induction_heads"]}
        assert {(h_layer, h_head) for _, h_layer, h_head in card["name_heads"]} <= induction_heads


def test_the_attention_lesson_quotes_the_name_heads_on_the_suggested_prompt(bundled):
    """What lesson 4 says the name head does on its suggested prompt, measured on the bundled model."""
    from core.glassbox import Interventions, run_trace
    from core.lessons import load_lesson
    from tests.conftest import quoted

    loaded = bundled
    text = lesson_text("04_attention.md")
    (starting,) = quoted(r"starting_choices: (attn_layer=\d, attn_head=\d)", (MODEL_DIR.parent.parent / "lessons" /
                                                                             "04_attention.md").read_text())
    layer, head = quoted(r"one head, layer (\d), head (\d), does a job", text)
    assert starting == f"attn_layer={layer}, attn_head={head}"  # the head picker starts at the head the text names
    ids = loaded.tokenizer(load_lesson("home.md").meta["default_prompt"])["input_ids"]
    labels = [loaded.tokenizer.decode([token]) for token in ids]
    pattern = run_trace(loaded.model, ids)["pattern", int(layer)][int(head)]  # [query, key]
    names = [i for i, label in enumerate(labels) if label == " Mia"]
    stops = [i for i, label in enumerate(labels) if label == "."]
    assert len(names) == 2 and len(stops) == 2 and stops[0] == names[0] + 1  # the . after the first Mia, the . after "ball"
    assert labels[stops[1] - 1] == " ball" and labels[stops[1] + 1] != " Mia"  # no name follows the second
    for stop in stops:  # "looks back at the name too"
        assert float(pattern[stop, names].sum()) > 0.75
    card = json.loads((MODEL_DIR / "evaluation.json").read_text())
    both = frozenset((h_layer, h_head) for _, h_layer, h_head in card["name_heads"][:2])
    before, after = quoted(r"on the suggested prompt, the probability of \" Mia\" falls from (\d\.\d+) to "
                           r"(\d\.\d+)\.", text)
    mia = loaded.tokenizer(" Mia")["input_ids"][0]
    trace = run_trace(loaded.model, ids)
    assert before == f"{float(trace.next_token_probs()[mia]):.2f}"
    ablated = run_trace(loaded.model, ids, interventions=Interventions(ablated_heads=both))
    assert after == f"{float(ablated.next_token_probs()[mia]):.2f}"
    # "where it has no name to fetch, most rows park their attention on the first token"
    no_name = [q for q in range(1, len(ids)) if float(pattern[q, names].sum()) < 0.5]
    assert sum(float(pattern[q, 0]) > 0.5 for q in no_name) > len(no_name) / 2


def test_the_attention_lesson_quotes_the_copying_of_a_repeated_story_opening(bundled):
    from core.glassbox import run_trace
    from core.induction import copyable_positions, repeated_prompt, token_losses
    from core.tokenization import prompt_tokens
    from tests.conftest import quoted

    (opening,) = quoted(r'on the story opening "([^"]+)" said twice, its repeat still cost', lesson_text("04_attention.md"))
    (loss,) = quoted(r"on the same opening said twice its repeat costs (\d\.\d+)", lesson_text("04_attention.md"))
    loaded = bundled
    ids = [token.id for token in prompt_tokens(loaded.tokenizer, repeated_prompt(opening))]
    copied = copyable_positions(ids)
    assert len(copied) > 10
    losses = token_losses(run_trace(loaded.model, ids)["logits"], ids)  # [n_tokens - 1]
    assert loss == f"{float(losses[copied].mean()):.2f}"


def test_the_attention_lesson_reads_the_induction_stripe_on_the_suggested_repeat(bundled):
    from core.glassbox import run_trace
    from core.lessons import load_lesson
    from core.tokenization import prompt_tokens
    from tests.conftest import quoted

    repeat = [text.strip() for text in load_lesson("04_attention.md").meta["suggested_prompts"].split("|")][2]
    query, share, key, earlier = quoted(r'the course model\'s induction head, at the second "([^"]+)", puts ([\d.]+) of '
                                        r'its attention on the first "([^"]+)", the token that followed the first '
                                        r'"([^"]+)"', lesson_text("04_attention.md"))
    loaded = bundled
    ids = [token.id for token in prompt_tokens(loaded.tokenizer, repeat)]
    labels = [loaded.tokenizer.decode([token]) for token in ids]
    first, second = [i for i, label in enumerate(labels) if label == query]
    assert query == earlier and labels[first + 1] == key
    layer, head = json.loads((MODEL_DIR / "evaluation.json").read_text())["induction"]["induction_head"]
    pattern = run_trace(loaded.model, ids)["pattern", layer][head]  # [query, key]
    assert int(pattern[second].argmax()) == first + 1 and f"{float(pattern[second, first + 1]):.2f}" == share
