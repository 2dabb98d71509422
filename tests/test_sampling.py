"""Lesson 6's math: temperature, top-k, top-p, the funnel, the generation loop, the logit lens."""
from __future__ import annotations

import math
import re

import pytest
import torch
from transformers.generation.logits_process import TopKLogitsWarper, TopPLogitsWarper

from core import residual, sampling
from core.glassbox import run_trace
from core.sampling import Strategy
from tests.conftest import lesson_text, quoted, random_gpt2

LOGITS = torch.tensor([2.0, 1.0, 0.5, -1.0, 3.0, 0.0])


def test_temperature_softmax_against_a_direct_computation():
    for temperature in (0.05, 0.3, 1.0, 2.5, 5.0):
        direct = [math.exp(v / temperature) for v in LOGITS.tolist()]
        direct = [v / sum(direct) for v in direct]
        got = sampling.log_softmax_with_temperature(LOGITS, temperature).exp().tolist()
        assert got == pytest.approx(direct, rel=1e-9)


def test_temperature_edges_are_finite_and_correct():
    huge = torch.tensor([1e4, -1e4, 5e3, 0.0])  # would overflow exp(logit / T) computed directly
    for temperature in (0.0, 1e-9, 1e-3, 0.0011, 0.05, 1.0, 5.0, 1e6):
        log_probs = sampling.log_softmax_with_temperature(huge, temperature)
        assert not torch.isnan(log_probs).any()
        assert float(log_probs.exp().sum()) == pytest.approx(1.0)
    greedy = sampling.log_softmax_with_temperature(LOGITS, 0.0).exp()
    assert greedy.tolist() == [0, 0, 0, 0, 1, 0]  # T → 0 is the argmax
    assert int(sampling.log_softmax_with_temperature(LOGITS, 0.01).argmax()) == int(LOGITS.argmax())
    tie = sampling.log_softmax_with_temperature(torch.tensor([1.0, 3.0, 3.0]), 0.0).exp()
    assert tie.tolist() == [0.0, 0.5, 0.5]
    flat = sampling.log_softmax_with_temperature(LOGITS, 1e6).exp()
    assert flat.tolist() == pytest.approx([1 / 6] * 6, abs=1e-5)  # very large T: uniform
    assert sampling.entropy_bits(sampling.log_softmax_with_temperature(LOGITS, 1e6)) == pytest.approx(math.log2(6))
    assert sampling.entropy_bits(sampling.log_softmax_with_temperature(LOGITS, 0.0)) == 0.0


def test_top_k_kept_sets_with_ties():
    log_probs = torch.log(torch.tensor([0.1, 0.3, 0.2, 0.2, 0.15, 0.05]))
    assert sampling.top_k_keep(log_probs, 1).tolist() == [False, True, False, False, False, False]
    assert sampling.top_k_keep(log_probs, 2).tolist() == [False, True, True, True, False, False]  # tie kept whole
    assert sampling.top_k_keep(log_probs, 0).all() and sampling.top_k_keep(log_probs, 99).all()


def test_top_p_kept_sets_with_ties():
    log_probs = torch.log(torch.tensor([0.1, 0.3, 0.2, 0.2, 0.15, 0.05]))
    assert sampling.top_p_keep(log_probs, 0.3).tolist() == [False, True, False, False, False, False]
    assert sampling.top_p_keep(log_probs, 0.31).tolist() == [False, True, True, True, False, False]  # tie whole
    assert sampling.top_p_keep(log_probs, 0.75).tolist() == [False, True, True, True, True, False]
    assert sampling.top_p_keep(log_probs, 1.0).all()
    assert sampling.top_p_keep(log_probs, 0.0).tolist() == [False, True, False, False, False, False]


@pytest.mark.parametrize("seed", range(5))
def test_kept_sets_match_hugging_face_without_ties(seed):
    logits = torch.randn(50, generator=torch.Generator().manual_seed(seed)) * 3
    log_probs = torch.log_softmax(logits.double(), dim=-1)
    for k in (1, 5, 20):
        hf = TopKLogitsWarper(top_k=k)(None, logits[None].clone())[0] > -math.inf
        assert torch.equal(sampling.top_k_keep(log_probs, k), hf)
    for p in (0.1, 0.5, 0.9, 0.99):
        hf = TopPLogitsWarper(top_p=p)(None, logits[None].clone())[0] > -math.inf
        assert torch.equal(sampling.top_p_keep(log_probs, p), hf)


def test_funnel_masses_add_up():
    logits = torch.randn(40, generator=torch.Generator().manual_seed(3)) * 2
    stage = sampling.funnel(logits, Strategy(temperature=0.8, top_k=10, top_p=0.7))
    whole, by_k, by_p = stage.mass(torch.ones(40, dtype=torch.bool)), stage.mass(stage.kept_by_top_k), stage.mass(stage.kept_by_top_p)
    assert whole == pytest.approx(1.0) and 0 < by_p <= by_k <= whole
    assert int(stage.kept_by_top_k.sum()) == 10
    assert (stage.kept_by_top_p <= stage.kept_by_top_k).all()
    assert float(stage.final.exp().sum()) == pytest.approx(1.0)
    # top-p is measured on the top-k survivors, renormalised (Hugging Face's order)
    after_k = stage.log_probs.exp() * stage.kept_by_top_k / by_k
    sorted_after_k = after_k.sort(descending=True).values
    kept = int(stage.kept_by_top_p.sum())
    assert float(sorted_after_k[:kept - 1].sum()) < 0.7 <= float(sorted_after_k[:kept].sum()) + 1e-12
    # the final distribution is the temperature distribution restricted to the kept set
    torch.testing.assert_close(stage.final.exp()[stage.kept_by_top_p],
                               stage.log_probs.exp()[stage.kept_by_top_p] / by_p)


def test_seeded_sampling_is_reproducible():
    logits = torch.randn(100, generator=torch.Generator().manual_seed(1))
    strategy = Strategy(temperature=1.5, top_k=50, top_p=0.95)
    draws = {sampling.sample_next(logits, strategy, seed=7) for _ in range(5)}
    assert len(draws) == 1
    many = {sampling.sample_next(logits, strategy, seed=s) for s in range(30)}
    assert len(many) > 1  # different seeds do differ


@pytest.fixture(scope="module")
def model():
    return random_gpt2(n_layer=2, n_head=2, n_embd=32, n_positions=40, vocab_size=60, seed=4).requires_grad_(False)


def test_greedy_generation_equals_hugging_face_generate(model):
    prompt = [5, 17, 3, 44, 9]
    ours = sampling.generate(model, prompt, 20, Strategy(temperature=0.0), seed=0)
    theirs = model.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=20, min_new_tokens=20,
                            pad_token_id=0, top_k=None, top_p=None)[0, len(prompt):].tolist()
    assert ours.new_ids == theirs


def test_generation_is_deterministic_and_its_log_probability_is_real(model):
    prompt = [5, 17, 3]
    strategy = Strategy(temperature=1.3, top_k=20, top_p=0.9)
    first, again = (sampling.generate(model, prompt, 12, strategy, seed=11) for _ in range(2))
    assert first.new_ids == again.new_ids and len(first.new_ids) == 12
    full = prompt + first.new_ids
    log_probs = torch.log_softmax(model(torch.tensor([full])).logits[0].double(), dim=-1)
    expected = sum(float(log_probs[len(prompt) - 1 + i, t]) for i, t in enumerate(first.new_ids))
    assert first.total_logprob == pytest.approx(expected, abs=1e-4)
    assert all(token in step.candidates or step.chosen_prob < step.candidate_probs[-1] + 1e-9
               for token, step in zip(first.new_ids, first.steps))


def test_generation_cuts_the_prompt_to_fit_the_context(model):
    prompt = list(range(1, 38))  # 37 tokens; context 40
    result = sampling.generate(model, prompt, 10, Strategy(temperature=0.0), seed=0)
    assert result.dropped_prompt_tokens == 7 and len(result.prompt_ids) == 30 and len(result.new_ids) == 10


def test_guess_probability(model):
    prompt, guess = [5, 17, 3], [8, 21]
    result = sampling.guess_probability(model, prompt, guess)
    log_probs = torch.log_softmax(model(torch.tensor([prompt + guess])).logits[0].double(), dim=-1)
    assert result.first_probability == pytest.approx(math.exp(float(log_probs[2, 8])))
    assert result.word_probability == pytest.approx(math.exp(float(log_probs[2, 8] + log_probs[3, 21])))
    assert result.first_rank == int((log_probs[2] > log_probs[2, 8]).sum()) + 1


def test_a_guess_longer_than_the_context_is_ranked_after_the_whole_prompt_and_scored_where_it_fits(model):
    """A hostile-student pass: 60 emoji (241 tokens, context 128) read the wrong positions (the cut
    left the guess's start before the window) and ranked its first token 539th, not 307th as the
    prompt's own distribution does; and a long guess's whole-word probability showed 0.00e+00."""
    prompt = list(range(1, 31))  # 30 tokens; context 40
    own = torch.log_softmax(model(torch.tensor([prompt])).logits[0, -1].double(), dim=-1)  # [vocab]
    for guess, scored, left_out in (([7] * 50, 39, 29), ([7, 9] * 6, 12, 2), ([8, 21], 2, 0)):
        result = sampling.guess_probability(model, prompt, guess)
        assert (result.scored_tokens, result.prompt_tokens_left_out) == (scored, left_out)
        assert result.first_rank == int((own > own[guess[0]]).sum()) + 1
        assert result.first_probability == pytest.approx(math.exp(float(own[guess[0]])))
        ids = prompt[left_out:] + guess[:scored]  # what the whole word is read after: at most the context
        assert len(ids) <= 40
        log_probs = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), dim=-1)
        start = len(ids) - scored
        assert result.word_log_probability == pytest.approx(
            sum(float(log_probs[start - 1 + i, token]) for i, token in enumerate(guess[:scored])))
    long = sampling.guess_probability(model, prompt, [7] * 50)
    assert long.word_probability == math.exp(long.word_log_probability)


def test_logit_lens_last_layer_is_the_models_output(model, monkeypatch):
    trace = run_trace(model, [5, 17, 3, 44, 9])
    lens = sampling.logit_lens(trace, model)
    assert lens.top_probs.shape == lens.top_ids.shape == (trace.n_layer + 1, 5)
    own = torch.softmax(trace["logits"], dim=-1)  # [pos, vocab]
    torch.testing.assert_close(lens.last_position[-1], own[-1], atol=1e-6, rtol=0)
    torch.testing.assert_close(lens.top_probs[-1], own.max(dim=-1).values, atol=1e-6, rtol=0)
    assert torch.equal(lens.top_ids[-1], own.argmax(dim=-1))
    torch.testing.assert_close(lens.last_position.sum(-1), torch.ones(trace.n_layer + 1))
    # an early row, by hand: the stream after block 0 through ln_f and the unembedding
    gpt = model.transformer
    by_hand = torch.softmax(model.lm_head(gpt.ln_f(trace["blocks.0.resid_post"])), dim=-1)
    torch.testing.assert_close(lens.top_probs[1], by_hand.max(dim=-1).values, atol=1e-6, rtol=0)
    # rows put through the unembedding a few at a time give the same lens as all at once
    monkeypatch.setattr(sampling, "LENS_CELLS", 7)  # 5 positions: one row per product
    one_by_one = sampling.logit_lens(trace, model)
    torch.testing.assert_close(one_by_one.top_probs, lens.top_probs, atol=1e-6, rtol=0)
    assert torch.equal(one_by_one.top_ids, lens.top_ids)
    torch.testing.assert_close(one_by_one.last_position, lens.last_position, atol=1e-6, rtol=0)
    last_two = sampling.logit_lens(trace, model, last_positions=2)  # what a figure of the last positions needs
    torch.testing.assert_close(last_two.top_probs, lens.top_probs[:, -2:], atol=1e-6, rtol=0)
    torch.testing.assert_close(last_two.last_position, lens.last_position, atol=1e-6, rtol=0)


def test_journey_flows_sum_to_the_logit_and_match_the_components(model):
    trace = run_trace(model, [5, 17, 3, 44, 9])
    labels = [str(i) for i in range(5)]
    for token_id in (0, 31):
        flows = sampling.journey_flows(trace, model, token_id, labels)
        assert sum(f.value for f in flows) == pytest.approx(float(trace["logits"][-1, token_id]), abs=1e-4)
        bars = dict(residual.direct_logit_contributions(trace, model, token_id))
        for layer in range(trace.n_layer):
            through = sum(f.value for f in flows if f.component == f"attention {layer}")
            assert through == pytest.approx(bars[f"attention {layer}"], abs=1e-5)
        assert {f.source for f in flows} <= set(labels) | {"biases"}


def test_funnel_links_conserve_probability_at_every_stage():
    logits = torch.randn(60, generator=torch.Generator().manual_seed(5)) * 3
    for strategy in (Strategy(0.7, 8, 0.6), Strategy(1.0, 0, 0.9), Strategy(2.0, 20, 1.0), Strategy(0.0, 0, 1.0)):
        stage = sampling.funnel(logits, strategy)
        chosen = sampling.sample_next(logits, strategy, seed=1)
        links = sampling.funnel_links(stage, chosen, "tok")
        into, out_of = {}, {}
        for a, b, mass in links:
            assert mass > 0
            out_of[a] = out_of.get(a, 0.0) + mass
            into[b] = into.get(b, 0.0) + mass
        assert out_of["whole vocabulary"] == pytest.approx(1.0, abs=1e-6)
        for stage_name in ("kept by top-k", "kept by top-p"):
            assert out_of.get(stage_name, 0.0) == pytest.approx(into.get(stage_name, 0.0), abs=1e-6)
        assert into["sampled: tok"] == pytest.approx(float(stage.log_probs[chosen].exp()), abs=1e-9)
    # greedy: the drawn token holds all the mass, so no "cut" or "not drawn" links are left
    assert [b for _, b, _ in links] == ["kept by top-k", "kept by top-p", "sampled: tok"]


def test_merging_small_journey_sources_keeps_the_sum_and_the_recent_positions(model):
    trace = run_trace(model, list(range(3, 23)))
    labels = [f"{i} t{i}" for i in range(20)]
    flows = sampling.journey_flows(trace, model, 7, labels)
    merged = sampling.merge_small_sources(flows, labels, last_positions=5, small_share=0.01)
    assert len(merged) == len(flows)
    assert sum(f.value for f in merged) == pytest.approx(sum(f.value for f in flows), abs=1e-9)
    assert {f.source for f in merged} <= set(labels[-5:]) | {"biases", "other positions"}
    assert "other positions" in {f.source for f in merged}
    up, down = sampling.raises_and_lowers(merged)
    assert up >= 0 and down >= 0
    assert up - down == pytest.approx(float(trace["logits"][-1, 7]), abs=1e-4)
    everything = sampling.merge_small_sources(flows, labels, last_positions=20, small_share=0.0)
    assert [f.source for f in everything] == [f.source for f in flows]


def test_the_lessons_numbers_about_sure_and_unsure_prompts_are_the_course_models(bundled):
    """Lesson 6 quotes these probabilities of the bundled model; they are read from the lesson and re-measured."""
    from core.lessons import load_lesson

    text = lesson_text("06_sampling.md")
    default_prompt = load_lesson("home.md").meta["default_prompt"]

    def top(prompt: str, n: int, digits: int) -> list[tuple[str, float]]:
        ids = bundled.tokenizer(prompt)["input_ids"]
        with torch.no_grad():
            probs = torch.softmax(bundled.model(input_ids=torch.tensor([ids])).logits[0, -1], -1)  # [vocab]
        best = probs.topk(n)
        return [(bundled.tokenizer.decode([i]), round(float(p), digits)) for p, i in zip(best.values, best.indices.tolist())]

    percent, token = quoted(r"the course model is ([\d.]+)% sure the next token is \"([^\"]+)\"", text)
    assert top(default_prompt, 1, digits=3) == [(token, round(float(percent) / 100, 3))]
    (bets,) = quoted(r'after "Once upon a time, there was a" it spreads its bet over (.*?) and more', text)
    candidates = [(token, float(p)) for token, p in re.findall(r'"([^"]+)" \(([\d.]+)\)', bets)]
    assert len(candidates) == 4
    assert top("Once upon a time, there was a", 4, digits=2) == candidates



def test_the_lessons_reading_of_the_journey_on_the_default_prompt(bundled):
    """Lesson 6: on the default prompt most of the chosen token's logit flows from the earlier copies
    of the name, through one attention layer; most of the rest from the last position, by two MLPs."""
    from core.glassbox import run_trace
    from core.lessons import load_lesson

    text = lesson_text("06_sampling.md")
    total, from_copies, copies, layer, last, first_mlp, second_mlp = quoted(
        r'On the default prompt the logit of " Mia" is ([\d.]+), and ([\d.]+) of it arrives from the (\w+) earlier '
        r"` Mia` tokens, copied into the last position by attention in layer (\d), where the name heads sit \(lesson "
        r"4\)\. Most of the rest is written at the last token, `(.)`, by the MLPs of layers (\d) and (\d)", text)
    ids = bundled.tokenizer(load_lesson("home.md").meta["default_prompt"])["input_ids"]
    labels = [f"{i} {bundled.tokenizer.decode([token])}" for i, token in enumerate(ids)]
    assert labels[-1].endswith(last)
    trace = run_trace(bundled.model, ids)
    mia = bundled.tokenizer(" Mia")["input_ids"][0]
    flows = sampling.journey_flows(trace, bundled.model, mia, labels)
    names = {label for label in labels if label.endswith(" Mia")}
    assert {2: "two"}[len(names)] == copies
    from_names = [flow for flow in flows if flow.source in names]
    logit = float(trace["logits"][-1, mia])
    assert (f"{logit:.1f}", f"{sum(flow.value for flow in from_names):.1f}") == (total, from_copies)
    assert sum(flow.value for flow in flows if flow.value > 0) > logit  # "the upward bands add up to more"
    assert max(from_names, key=lambda flow: flow.value).component == f"attention {layer}"
    from_last = sorted((flow for flow in flows if flow.source == labels[-1]), key=lambda flow: -flow.value)
    assert {flow.component for flow in from_last[:2]} == {f"MLP {first_mlp}", f"MLP {second_mlp}"}
    rest = logit - sum(flow.value for flow in from_names)
    assert sum(flow.value for flow in from_last) > 0.5 * rest  # "most of the rest"


def test_the_sweep_axis_spans_exactly_the_swept_temperatures():
    from core import figures

    temperatures = sampling.sweep_temperatures()
    figure = figures.sweep_lines(temperatures, {"top": [0.5] * len(temperatures)}, "t", "p", marker=1.0)
    low, high = figure.layout.xaxis.range
    assert (10 ** low, 10 ** high) == (pytest.approx(min(temperatures)), pytest.approx(max(temperatures)))
    assert list(figure.layout.xaxis.tickvals) == [0.05, 0.1, 0.2, 0.5, 1, 2, 5]


def test_generating_more_tokens_than_the_context_holds_is_cut_to_fit():
    from core.sampling import Strategy, generate
    from tests.tiny_models import tiny_model

    model = tiny_model("llama-gqa2")  # context 32
    result = generate(model, [1, 2, 3], 100, Strategy(0.0, 0, 1.0), seed=0)
    assert len(result.new_ids) == 31 and len(result.prompt_ids) == 1


def test_a_lens_cell_holds_its_token_cut_to_the_cells_width_and_the_hover_tells_it_whole():
    """Plotly writes a heatmap cell's text across its neighbours: `<|endoftext|>` in the logit
    lens's 24 columns covered two cells on each side (seen in Chromium)."""
    from core.figures import plotly_text, text_heatmap

    tokens = [plotly_text(token) for token in ("<|endoftext|>", " there", " purple", "&", "a")]
    texts = [tokens + ["a"] * 19]  # one row of 24 columns, as the lens draws
    chart = text_heatmap([[0.5] * 24], texts, [str(i) for i in range(24)], ["after block 0"], "lens", "position", "stopped after")
    cells = chart.to_dict()["data"][0]["text"][0]
    assert cells[:5] == ["&lt;|en…", "␣the…", "␣pur…", "&amp;", "a"]  # 5 characters at most, escapes whole
    assert chart.to_dict()["data"][0]["customdata"] == texts and "%{customdata}" in chart.to_dict()["data"][0]["hovertemplate"]
    few = text_heatmap([[0.5] * 3], [tokens[:3]], ["0", "1", "2"], ["row"], "steps", "position", "step")
    assert few.to_dict()["data"][0]["text"][0] == tokens[:3]  # wide cells: nothing cut
