"""The trainer's options a practitioner expects: gradient accumulation, learning-rate schedules
and bfloat16 autocast."""
from __future__ import annotations

import copy
import json
import re
from dataclasses import replace

import pytest
import torch

from core import copy_task
from core.training import SCHEDULES, Trainer, TrainConfig, learning_rate_at, schedule_curve

BASE = TrainConfig(n_layer=1, n_head=2, n_embd=32, block_size=16, batch_size=4, learning_rate=1e-2, warmup_steps=2,
                   max_steps=20, seed=0)


def data(seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 50, (2000,), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("architecture", ["gpt2", "llama"])
def test_one_step_with_accumulation_equals_one_step_on_the_whole_batch(architecture):
    """4 micro-batches of 4 with accumulation move the weights as one batch of 16 (within float
    tolerance): the loss of each micro-batch is divided by 4, so the gradients add up to the mean's."""
    ids = data()
    accumulated = Trainer(replace(BASE, accumulation_steps=4, architecture=architecture), ids, ids, 50, 0)
    whole = Trainer(replace(BASE, batch_size=16, architecture=architecture), ids, ids, 50, 0)
    whole.model.load_state_dict(copy.deepcopy(accumulated.model.state_dict()))
    drawn = [accumulated.batch(ids, torch.Generator().manual_seed(7)) for _ in range(4)]  # 4 × [4, 16]
    queue = list(drawn)
    accumulated.batch = lambda *args: queue.pop(0)
    whole.batch = lambda *args: torch.cat(drawn)  # [16, 16]: the same examples at once
    first, second = accumulated.step(), whole.step()
    assert first.tokens == second.tokens == 16 * 16
    assert first.loss == pytest.approx(second.loss, abs=1e-5)
    assert first.grad_norm == pytest.approx(second.grad_norm, rel=1e-4)
    for (name, a), b in zip(accumulated.model.state_dict().items(), whole.model.state_dict().values()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5, msg=name)


def test_a_step_on_other_text_in_shorter_windows_trains_on_exactly_those_windows():
    """The course build's copying warm-up: `step(text=, window=)` draws its examples from that
    text in windows of that length, and moves the weights as a step on those examples would."""
    ids, other = data(), data(seed=1) + 50  # the other text's tokens (50..99) never occur in ids
    warm = Trainer(replace(BASE, n_embd=32), ids, ids, 100, 0)
    plain = Trainer(replace(BASE, n_embd=32), ids, ids, 100, 0)
    seen = []
    original = warm.batch
    warm.batch = lambda *args, **kwargs: seen.append(original(*args, **kwargs)) or seen[-1]
    result = warm.step(text=other, window=6)
    assert result.tokens == BASE.batch_size * 6 and seen[0].shape == (BASE.batch_size, 6)
    assert bool((seen[0] >= 50).all())  # every example is a window of the other text
    plain.batch = lambda *args, **kwargs: seen[0]  # the same examples through the ordinary step
    assert plain.step().loss == pytest.approx(result.loss, abs=1e-6)
    for (name, a), b in zip(warm.model.state_dict().items(), plain.model.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)


def test_schedules_warm_up_then_decay_as_named():
    for schedule in SCHEDULES:
        config = replace(BASE, schedule=schedule, max_steps=100, warmup_steps=10, min_lr_ratio=0.1)
        rates = [learning_rate_at(step, config) for step in range(100)]
        assert rates[:10] == pytest.approx([1e-2 * (s + 1) / 10 for s in range(10)])  # linear warm-up to the peak
        if schedule == "constant":
            assert set(rates[10:]) == {1e-2}
        else:
            assert rates[10] == pytest.approx(1e-2) and all(a >= b for a, b in zip(rates[10:], rates[11:]))
            assert learning_rate_at(100, config) == pytest.approx(1e-3)  # min_lr_ratio of the peak at the end
        middle = learning_rate_at(55, config)
        expected = {"constant": 1e-2, "linear": 1e-2 - 0.9e-2 * 0.5, "cosine": 1e-3 + 0.5 * 0.9e-2}[schedule]
        assert middle == pytest.approx(expected)
    steps, rates = schedule_curve(replace(BASE, max_steps=100), points=11)
    assert steps[0] == 0 and steps[-1] == 99 and rates == [learning_rate_at(s, replace(BASE, max_steps=100)) for s in steps]


def test_bfloat16_autocast_trains_and_keeps_float32_weights():
    ids = torch.arange(2000) % 7  # a pattern a model can learn
    trainer = Trainer(replace(BASE, precision="bfloat16", max_steps=30), ids, ids, 50, 0)
    losses = [trainer.step().loss for _ in range(30)]
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5  # it learns


def test_tiny_shakespeare_ships_with_the_project():
    from core.corpus import shakespeare_text

    text = shakespeare_text()
    assert len(text.encode("utf-8")) == 1_115_394 and text.startswith("First Citizen:")
    assert text.count("\n") == 40_000


def test_the_training_page_offers_shakespeare_both_designs_and_the_options():
    """The Shakespeare preset trains characters of Tiny Shakespeare; a Llama-design run with
    accumulation trains from the page, and the model it makes opens in the other lessons."""
    from core.course import LESSONS
    from tests.test_live_training import wait_for

    app = opened_at()
    app.selectbox(key="t_preset").select("Shakespeare").run()
    assert (app.session_state["t_source"], app.session_state["t_tokenizer"]) == ("shakespeare", "bytes")
    assert [m.value for m in app.metric if m.label == "Vocabulary"] == ["257"]  # 256 bytes + end of text
    assert any("t-schedule" in c.proto.id for c in app.get("plotly_chart"))  # the schedule, drawn before training
    app.selectbox(key="t_preset").select("custom").run()
    for knob, value in {"t_n_layer": 1, "t_n_embd": 32, "t_n_head": 4, "t_block_size": 32, "t_batch_size": 4,
                        "t_max_steps": 12, "t_warmup_steps": 2, "t_accumulation_steps": 2}.items():
        app.number_input(key=knob).set_value(value).run()
    app.selectbox(key="t_architecture").select("llama").run()
    app.number_input(key="t_n_kv_head").set_value(2).run()
    app.selectbox(key="t_schedule").select("linear").run()
    assert any(c.value.startswith("Each step learns from 8 examples (4 per micro-batch × 2)") for c in app.caption)
    app.button(key="t_start").click().run()
    run = app.session_state["t_run"]
    assert wait_for(lambda: run.status == "finished", timeout=120)
    assert run.trainer.model.config.model_type == "llama" and run.trainer.model.config.num_key_value_heads == 2
    app.run()
    [schedule] = [json.loads(c.proto.spec) for c in app.get("plotly_chart") if c.proto.id.endswith("t_lr")]
    assert schedule["layout"]["title"]["text"] == "Learning-rate schedule: warm-up, then linear decay"  # the one chosen
    app.button(key="t_use").click().run()
    app.switch_page(LESSONS[3].page).run()
    assert not app.exception, [e.value for e in app.exception]
    from core.cached import cached_model

    assert cached_model(app.session_state["model_key"]).family == "llama"


def test_the_copy_test_scores_a_llama_design_model():
    """copy_task_score read GPT-2's n_positions and crashed on a Llama-design run's evaluation."""
    from core import live_training

    data = live_training.training_data("copy", "", 300)
    config = replace(BASE, architecture="llama", n_kv_head=1, block_size=32)
    trainer = Trainer(config, data.train_ids, data.val_ids, data.vocab_size, 0, start_at_documents=True)
    score = copy_task.copy_task_score(trainer.model, data.tokenizer, copy_task.copy_test_lines(5))
    assert score is not None and 0.0 <= score.accuracy <= 1.0


@pytest.mark.parametrize("settings, says", [
    (dict(architecture="llama", n_head=4, n_kv_head=3), "The heads (4) must be a multiple of the key/value heads (3)."),
    (dict(architecture="llama", use_layernorm=False), "Switching off residual connections or LayerNorm"),
    (dict(n_embd=30, n_head=4), "The width (30) must be a multiple of the number of heads (4)."),
    (dict(architecture="llama", n_embd=24, n_head=8), "Rotary positions turn each head's numbers in pairs, so a "
                                                      "head's width (here 24 ÷ 8 = 3) must be even"),
])
def test_settings_no_model_can_be_built_with_are_refused_in_one_sentence_before_start(settings, says):
    """Issue 13's kind of failure: with 3 key/value heads for 4 query heads the page warned, yet Start
    stayed enabled and the run's thread crashed in the model's forward, leaving a run that said
    "running" forever. One rule (core.training.config_problem) now serves the trainer and the page."""
    from core import live_training
    from core.training import config_problem

    config = replace(BASE, **settings)
    assert config_problem(config).startswith(says)
    assert config_problem(replace(config, **{key: getattr(BASE, key) for key in settings})) is None
    data = live_training.training_data("copy", "", 300)
    with pytest.raises(ValueError, match=re.escape(says)):
        Trainer(config, data.train_ids, data.val_ids, data.vocab_size, 0)

    app = opened_at()
    app.selectbox(key="t_preset").select("custom").run()
    for knob, value in settings.items():
        app.session_state[f"t_{knob}"] = value
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    assert [w.value for w in app.warning if w.value.startswith(says)] == [config_problem(config)]  # once
    start = app.button(key="t_start")
    assert start.proto.disabled and "settings" in start.proto.help


def test_gradient_clipping_at_0_is_off_and_the_schedule_is_named_as_chosen():
    """A student reads 0 as "clipping off" (nanoGPT's convention too): it scaled every gradient to
    zero instead, and the run learned nothing (only weight decay moved the weights)."""
    from core import live_training
    from core.training import schedule_name

    prepared = live_training.prepare_data(copy_task.copy_task_documents(200), live_training.BYTE_VOCABULARY)
    losses = {}
    for clip in (0.0, 1e9):
        trainer = Trainer(replace(BASE, grad_clip=clip, max_steps=20), prepared.train_ids, prepared.val_ids,
                          prepared.vocab_size, 0)
        losses[clip] = [trainer.step().loss for _ in range(20)]
    assert losses[0.0] == losses[1e9] and losses[0.0][-1] < losses[0.0][0] - 0.5  # unclipped, and it learns
    assert [schedule_name(replace(BASE, schedule=s)) for s in SCHEDULES] == [
        "warm-up, then cosine decay", "warm-up, then linear decay", "warm-up, then constant"]
    assert schedule_name(replace(BASE, schedule="linear", warmup_steps=0)) == "linear decay"


def test_a_warm_up_not_shorter_than_the_run_is_said_and_the_run_may_still_start():
    """A warm-up of 300 steps in a run of 200 was accepted without a word (only the schedule chart
    showed it): the page now says what it means, and Start stays enabled, as it may be meant."""
    from core.training import warmup_note

    assert warmup_note(replace(BASE, warmup_steps=19, max_steps=20)) is None
    assert warmup_note(replace(BASE, warmup_steps=20, max_steps=20)) == (
        "The warm-up (20 steps) is not shorter than the run (20 steps): the learning rate rises for the whole run, "
        "reaching the peak of 0.01 only at its last step, and the schedule after the warm-up never begins.")
    longer = replace(BASE, warmup_steps=300, max_steps=200)
    assert warmup_note(longer) == (
        "The warm-up (300 steps) is not shorter than the run (200 steps): the learning rate rises for the whole run, "
        f"to {learning_rate_at(199, longer):.3g} at its last step, below the peak of 0.01, and the schedule after "
        "the warm-up never begins.")
    assert learning_rate_at(199, longer) == pytest.approx(0.01 * 200 / 300)

    app = opened_at()
    assert not [i for i in app.info if i.value.startswith("The warm-up")]  # the preset's warm-up is shorter
    app.selectbox(key="t_preset").select("custom").run()
    app.number_input(key="t_max_steps").set_value(200).run()
    app.number_input(key="t_warmup_steps").set_value(300).run()
    said = [i.value for i in app.info if i.value.startswith("The warm-up")]
    assert said == [warmup_note(replace(BASE, learning_rate=app.session_state["t_learning_rate"], warmup_steps=300,
                                        max_steps=200))]
    assert not app.button(key="t_start").disabled


def test_a_bpe_that_stops_short_of_the_size_asked_says_so_next_to_the_vocabulary():
    """The copy task asked for a BPE of 512 tokens gives 434, with nothing by the slider saying so
    (the lesson says it in prose): the page now says it under the vocabulary's figures."""
    from core import live_training
    from core.corpus import END_OF_TEXT

    app = opened_at()
    app.radio(key="t_source").set_value("copy").run()
    app.slider(key="t_vocab").set_value(512).run()
    assert [m.value for m in app.metric if m.label == "Vocabulary"] == ["434"]
    said = [c.value for c in app.caption if c.value.startswith("The BPE stopped")]
    assert said == ["The BPE stopped at 434 tokens, not the 512 asked for: every word of this text (as the tokenizer "
                    "cuts it) is already one token, so no pair is left to merge."]
    data = live_training.training_data("copy", "", 512)  # what the sentence claims: no word is cut in two
    documents = data.tokenizer.decode(data.train_ids.tolist()).split(END_OF_TEXT)
    words = {word for document in documents
             for word, _ in data.tokenizer.backend_tokenizer.pre_tokenizer.pre_tokenize_str(document)}
    assert words and all(len(data.tokenizer.backend_tokenizer.model.tokenize(word)) == 1 for word in words)
    app.slider(key="t_vocab").set_value(400).run()  # a size the text can give: no sentence
    assert [m.value for m in app.metric if m.label == "Vocabulary"] == ["400"]
    assert not [c for c in app.caption if c.value.startswith("The BPE stopped")]
    app.radio(key="t_tokenizer").set_value("bytes").run()  # characters: no BPE, no sentence
    assert not [c for c in app.caption if c.value.startswith("The BPE stopped")]


def open_the_runs_address(app):
    """A new session (a reload, or a classmate given the address) opening lesson 7 at the address of
    `app`'s run: it finds that run."""
    from streamlit.testing.v1 import AppTest

    from core.course import APP_DIR, LESSONS

    other = AppTest.from_file(str(APP_DIR / "Home.py"), default_timeout=120)
    other.query_params["run"] = app.query_params["run"]
    other.switch_page(LESSONS[6].page).run()
    assert not other.exception and other.session_state["t_run"] is app.session_state["t_run"]
    return other


def opened_at(page: str | None = None):
    """A new student's session in AppTest: Home, then `page` (lesson 7 unless named), as the sidebar goes."""
    from streamlit.testing.v1 import AppTest

    from core.course import APP_DIR, LESSONS

    app = AppTest.from_file(str(APP_DIR / "Home.py"), default_timeout=120)
    app.run()
    app.switch_page(page or LESSONS[6].page).run()
    return app


def tiny_custom_run_page(**settings):
    """Lesson 7 in AppTest with the custom preset at a tiny size (and `settings`), on the stories."""
    app = opened_at()
    app.selectbox(key="t_preset").select("custom").run()
    for knob, value in {"t_n_layer": 1, "t_n_head": 2, "t_n_embd": 32, "t_block_size": 32, "t_batch_size": 4,
                        "t_max_steps": 12, "t_warmup_steps": 2, **settings}.items():
        app.number_input(key=knob).set_value(value).run()
    return app


@pytest.mark.parametrize("switch", ["t_use_layernorm", "t_use_residual"])
def test_a_run_with_a_switch_off_trains_from_the_page_and_says_what_it_cannot_have(switch):
    """A hostile-student pass: unticking LayerNorm crashed the page (the final LayerNorm gets no
    gradient, and the gradient-norm chart stacked an empty list), so that experiment could not run;
    with residual connections off, the samples, the attention snapshots and the saved model all came
    from the Hugging Face forward, which adds and norms: a different model from the one trained."""
    from core.training import group_norm, own_forward_note
    from tests.test_live_training import wait_for

    assert group_norm([]) == 0.0
    app = tiny_custom_run_page()
    app.checkbox(key=switch).uncheck().run()
    assert not app.exception, [e.value for e in app.exception]
    assert [m.label for m in app.metric if m.label.startswith("Time per step")]
    app.button(key="t_start").click().run()
    run = app.session_state["t_run"]
    assert wait_for(lambda: run.status == "finished", timeout=120), run.status
    view = run.view()
    assert view.samples and not view.snapshots and len(view.steps) == 12
    final_norm_gradient = view.layer_grad_norms["final LayerNorm"][-1]  # unused without LayerNorm: no gradient
    assert final_norm_gradient == 0.0 if switch == "t_use_layernorm" else final_norm_gradient > 0
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    note = own_forward_note(run.config)
    assert note and ("LayerNorm switched off" if switch == "t_use_layernorm" else "residual connections switched off") in note
    assert [i.value for i in app.info].count(note) == 1
    assert not [b for b in app.button if b.key == "t_use"] and not app.get("download_button")


def test_sampling_through_a_model_s_own_forward_draws_what_the_cached_forward_draws():
    """generate(forward=): each step reads the whole context again through the given forward (a
    switched-off run's samples); with both switches on it draws the same tokens as the KV cache."""
    from core.sampling import Strategy, generate
    from core.training import forward_logits

    trainer = Trainer(BASE, data(), data(), 50, 0)
    trainer.model.eval()
    prompt = data()[:5].tolist()
    for strategy in (Strategy(0.0, 0, 1.0), Strategy(1.0, 10, 0.9)):
        cached = generate(trainer.model, prompt, 8, strategy, seed=3)
        own = generate(trainer.model, prompt, 8, strategy, seed=3, forward=lambda ids: forward_logits(trainer.model, ids))
        assert own.new_ids == cached.new_ids
        assert [s.model_logprob for s in own.steps] == pytest.approx([s.model_logprob for s in cached.steps], abs=1e-4)


def test_the_step_time_is_one_micro_batch_s_and_a_slow_first_step_is_the_measurement(monkeypatch):
    """A hostile-student pass: the largest settings (13 s a step here) kept the page measuring for
    minutes, and gradient accumulation multiplied it. Now one micro-batch's step is timed and
    multiplied by the accumulation, and a first step slower than a second is the measurement."""
    from types import SimpleNamespace

    from core import live_training

    taken = []
    step = Trainer.step
    monkeypatch.setattr(Trainer, "step",
                        lambda self, **options: taken.append(self.config.accumulation_steps) or step(self, **options))
    for seconds_per_call, steps_taken in ((2.0, 1), (0.01, 7)):
        clock = iter(range(1000))
        ticks = SimpleNamespace(perf_counter=lambda clock=clock, each=seconds_per_call: next(clock) * each)
        monkeypatch.setattr(live_training, "time", ticks)  # each reading of the clock: one more step of `each` s
        taken.clear()
        measured = live_training.measure_step_seconds(replace(BASE, accumulation_steps=4), 50)
        assert taken == [1] * steps_taken  # one micro-batch a step
        assert measured == pytest.approx(seconds_per_call * 4)  # each timed step: two clock readings apart


def test_lesson_7_s_frozen_step_fits_a_model_with_a_short_context():
    """A hostile-student pass: a model trained here with a context of 16, used in the other lessons,
    crashed lesson 7's frozen step (IndexError: it read the prompt's first 32 tokens)."""
    from core.backprop_step import EXAMPLE_TOKENS, frozen_step_example
    from core.corpus import generate_stories
    from tests.test_live_training import wait_for

    app = tiny_custom_run_page(t_block_size=16)
    app.radio(key="t_source").set_value("text").run()
    app.radio(key="t_tokenizer").set_value("bytes").run()
    app.text_area(key="t_text").input(" ".join(story.text for story in generate_stories(40, 5))[:4000]).run()
    app.button(key="t_start").click().run()
    run = app.session_state["t_run"]
    assert wait_for(lambda: run.status == "finished", timeout=120), run.status
    app.run()
    app.button(key="t_use").click().run()  # the page now runs on the model trained here
    assert not app.exception, [e.value for e in app.exception]
    assert any(c.value.startswith("Model: ") and "Example: the first 16 tokens of your prompt" in c.value for c in app.caption)
    tokenizer = run.data.tokenizer
    assert EXAMPLE_TOKENS > 16 and len(frozen_step_example(tokenizer, "x" * 100, "ab", context_length=16)) == 16


def test_a_switch_left_off_when_the_llama_design_is_chosen_can_be_switched_back_on():
    """A hostile-student pass: untick LayerNorm in the GPT-2 design, then choose Llama: the warning
    asks to switch it back on, but both boxes were greyed out in the Llama design."""
    app = tiny_custom_run_page()
    app.checkbox(key="t_use_layernorm").uncheck().run()
    app.selectbox(key="t_architecture").select("llama").run()
    assert [w.value for w in app.warning if "switch them back on" in w.value]
    assert app.button(key="t_start").disabled
    assert app.checkbox(key="t_use_residual").disabled  # ticked: nothing to change in this design
    assert not app.checkbox(key="t_use_layernorm").disabled
    app.checkbox(key="t_use_layernorm").check().run()
    assert not [w.value for w in app.warning if "switch them back on" in w.value]
    assert not app.button(key="t_start").disabled and app.checkbox(key="t_use_layernorm").disabled


def test_what_a_run_trains_on_is_locked_while_it_trains():
    """A hostile-student pass: while a run trained, only the source was locked; the Shakespeare
    preset still changed the source, and the tokenizer and vocabulary stayed live, so the data's
    figures described data the run was not using. Likewise the settings: the schedule, parameter
    count and step time under them described settings the run was not using (and a changed one
    timed a step against the run)."""
    from tests.test_live_training import wait_for

    app = tiny_custom_run_page(t_max_steps=20_000)
    app.button(key="t_start").click().run()
    run = app.session_state["t_run"]
    try:
        assert run.is_active
        assert app.radio(key="t_source").disabled and app.radio(key="t_tokenizer").disabled
        assert app.slider(key="t_vocab").disabled and app.selectbox(key="t_preset").disabled
        settings = [widget for widget in (*app.number_input, *app.selectbox, *app.radio, *app.checkbox)
                    if widget.key.startswith("t_")]  # (the sidebar's model picker and the questions are not the run's)
        assert len(settings) > 15 and [widget.key for widget in settings if not widget.disabled] == []
        app.session_state["t_source"] = "text"  # (as a page left open from before the run could send)
        app.run()
        assert not app.exception and app.radio(key="t_source").value == "stories"  # the run's own, shown again
    finally:
        run.stop()
    assert wait_for(lambda: not run.is_active, timeout=60)
    app.run()
    assert not app.radio(key="t_tokenizer").disabled and not app.selectbox(key="t_preset").disabled
    assert not app.number_input(key="t_learning_rate").disabled and not app.checkbox(key="t_use_layernorm").disabled


def test_a_page_reloaded_mid_run_shows_the_runs_settings_and_numbers():
    """A hostile-student pass: reloaded mid-run, lesson 7 found the run, but its locked settings,
    and every number under them (vocabulary, parameters, step time, examples per step), showed this
    session's defaults: the 1-minute preset with a BPE of 512, not the run's 1 layer on characters."""
    from tests.test_live_training import wait_for

    app = tiny_custom_run_page(t_max_steps=20_000, t_seed=7)
    app.radio(key="t_tokenizer").set_value("bytes").run()
    shown = {metric.label: metric.value for metric in app.metric}
    app.button(key="t_start").click().run()
    run = app.session_state["t_run"]
    try:
        reloaded = open_the_runs_address(app)
        assert reloaded.radio(key="t_tokenizer").value == "bytes" and reloaded.number_input(key="t_seed").value == 7
        assert reloaded.number_input(key="t_n_layer").value == 1 and reloaded.number_input(key="t_n_layer").disabled
        again = {metric.label: metric.value for metric in reloaded.metric}
        for label in ("Vocabulary", "Training tokens", "Parameters", "Time per step (measured now)"):
            assert again[label] == shown[label], label
    finally:
        run.stop()
    assert wait_for(lambda: not run.is_active, timeout=60)


def test_settings_that_do_not_change_a_steps_time_reuse_its_measurement(monkeypatch):
    """A hostile-student pass: a new seed (or learning rate, or number of steps) timed the step again,
    seconds each on the 5-minute preset and 23-27 s at the largest settings, and the estimate moved
    with the timing's noise. Only what changes a step's work is measured again."""
    from core import live_training

    timed = []
    measure = live_training.measure_step_seconds
    monkeypatch.setattr(live_training, "measure_step_seconds",
                        lambda config, vocab_size: timed.append(config) or measure(config, vocab_size))
    app = tiny_custom_run_page()
    before = len(timed)
    for knob, value in (("t_seed", 3), ("t_learning_rate", 0.01), ("t_max_steps", 40), ("t_warmup_steps", 5),
                        ("t_weight_decay", 0.2)):
        app.number_input(key=knob).set_value(value).run()
    app.selectbox(key="t_schedule").set_value("linear").run()
    assert len(timed) == before
    app.number_input(key="t_n_embd").set_value(80).run()  # a wider model is measured again (a width no other test times)
    assert len(timed) == before + 1 and timed[-1].n_embd == 80


def test_a_head_clicked_on_the_map_is_chosen_on_lesson_4s_first_visit():
    """A hostile-student pass: the course's main path (Home, the map, a click on a head) opened lesson
    4 on its starting choice, layer 1 head 0, the first time: the map's own run applied the click,
    then lesson 4's first visit set its starting choices over it."""
    import course_ui
    from core.course import COURSE

    app = opened_at(COURSE[0].page)
    app.session_state["map_go_to"] = 4  # what the map's on_select stores for a click on head 2 of layer 3
    app.session_state["map_choices"] = (4, course_ui.choices_for_part("blocks.3.attn.head.2", 4))
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    assert any(title.value.startswith("Lesson 4 ·") for title in app.title)
    assert (app.session_state["attn_layer"], app.session_state["attn_head"]) == (3, 2)


def test_a_setting_changed_by_hand_makes_the_preset_custom():
    """A hostile-student pass: after any setting was changed the picker still read "1-minute"."""
    app = opened_at()
    assert app.selectbox(key="t_preset").value == "1-minute"
    app.number_input(key="t_seed").set_value(3).run()
    assert app.selectbox(key="t_preset").value == "custom" and app.number_input(key="t_seed").value == 3
    app.selectbox(key="t_preset").select("1-minute").run()  # choosing a preset again sets its values
    assert app.number_input(key="t_seed").value == 0


def test_one_of_a_thing_is_said_in_the_singular():
    """A hostile-student pass: batch 1 gave "Each step learns from 1 examples"."""
    from core.figures import counted

    assert (counted(1, "step"), counted(0, "step"), counted(1_200, "example")) == ("1 step", "0 steps", "1,200 examples")
    app = tiny_custom_run_page(t_batch_size=1)
    assert any(c.value.startswith("Each step learns from 1 example (1 per micro-batch × 1)") for c in app.caption)


def test_a_classmate_who_opens_a_runs_address_watches_but_cannot_stop_it():
    """A hostile-student pass: the address that lets a reload find the run (?run=…) is the one a
    student copies to share the lesson, and a classmate who opened it could Stop or Reset the run.
    While the owner's page is open, another page with the address only watches."""
    from tests.test_live_training import wait_for

    owner = tiny_custom_run_page(t_max_steps=20_000)
    owner.button(key="t_start").click().run()
    run = owner.session_state["t_run"]
    try:
        classmate = open_the_runs_address(owner)
        assert all(classmate.button(key=key).disabled for key in ("t_pause", "t_stop", "t_reset"))
        assert any(c.value.startswith("This run belongs to another open page") for c in classmate.caption)
        owner.run()
        assert not any(owner.button(key=key).disabled for key in ("t_pause", "t_stop", "t_reset"))
        assert not any(c.value.startswith("This run belongs to another open page") for c in owner.caption)
        assert run.status == "running"
    finally:
        run.stop()
    assert wait_for(lambda: not run.is_active, timeout=60)


def test_a_previous_run_on_other_tokens_is_not_drawn_beside_the_next():
    """A hostile-student pass: after a run with the BPE, a run with characters drew the BPE run's
    loss dashed beside its own, though a loss over other tokens measures something else."""
    from tests.test_live_training import wait_for

    app = tiny_custom_run_page(t_max_steps=20_000)
    app.button(key="t_start").click().run()
    first = app.session_state["t_run"]
    assert wait_for(lambda: first.view().steps)
    app.button(key="t_stop").click().run()
    app.radio(key="t_tokenizer").set_value("bytes").run()
    app.button(key="t_start").click().run()
    second = app.session_state["t_run"]
    try:
        assert wait_for(lambda: second.view().steps)
        app.run()
        assert app.session_state["t_previous"] is None
        assert any(c.value.startswith("Your previous run is not drawn beside this one") for c in app.caption)
        app.button(key="t_stop").click().run()
        app.button(key="t_start").click().run()  # the same tokens again: drawn, and nothing said
        third = app.session_state["t_run"]
        assert wait_for(lambda: third.view().steps)
        app.run()
        assert app.session_state["t_previous"] is not None
        assert not any(c.value.startswith("Your previous run is not drawn") for c in app.caption)
    finally:
        for run in (first, second, app.session_state["t_run"]):
            run.stop()
