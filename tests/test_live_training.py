"""Lesson 7: uploads, data, the training run in its thread, the frozen backpropagation step."""
from __future__ import annotations

import math
import os
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from core import copy_task, corpus, live_training, training_run
from core.corpus import generate_stories
from core.live_training import PRESETS, TextRejected
from core.training_run import RUNS, Cadence, TrainingRun
from core.training import Trainer
from tests.conftest import random_gpt2

TINY = replace(PRESETS["1-minute"], n_layer=1, n_head=2, n_embd=32, block_size=32, batch_size=8, max_steps=30,
               warmup_steps=5)


@pytest.fixture(scope="module")
def copy_data():
    return live_training.prepare_data(copy_task.copy_task_documents(400), live_training.BYTE_VOCABULARY)


def wait_for(condition, timeout: float = 60.0) -> bool:
    """True as soon as `condition()` holds; False if it still does not after `timeout` seconds (a
    generous bound: the tests wait on what happens, never on how fast, which a loaded machine changes)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.02)
    return False


def run_for(data, config=TINY, **options) -> TrainingRun:
    return TrainingRun(config, data, probe_text="ab cd | ab cd", sample_prompt="ab cd |", cadence=Cadence(10, 10, 10),
                       **options)


def finished_run(data, config=TINY, timeout: float = 120, **options) -> TrainingRun:
    """A run started and waited for until it ends by itself."""
    run = run_for(data, config, **options)
    run.start()
    run.wait(timeout=timeout)
    return run


@pytest.mark.parametrize("data, reason", [
    (b"", "empty"), (b"   \n", "empty"), (b"\x89PNG\r\n\x1a\n\x00\x00\x00IHDR" * 300, "binary"),
    ("é".encode("latin-1") * 3000, "not UTF-8"),
    # one byte over: it said "3.0 MB; the lesson takes at most 3 MB" (a hostile-student pass)
    (b"a" * (live_training.MAX_UPLOAD_BYTES + 1), r"^The text is 3,000,001 bytes; the lesson takes at most 3,000,000 \(3 MB\)\.$"),
])
def test_bad_uploads_are_refused_with_a_message(data, reason):
    with pytest.raises(TextRejected, match=reason):
        live_training.read_text_upload(data)


def test_a_good_upload_is_read():
    text = "Ein kleiner Text über Bäume. 🌳 " * 100
    assert live_training.read_text_upload(text.encode("utf-8")) == text


def story_text(characters: int, separator: str) -> str:
    """The first `characters` characters of English stories, as one paragraph or as many."""
    return separator.join(story.text for story in generate_stories(40, 5))[:characters]


@pytest.mark.parametrize("separator", [" ", "\n\n"], ids=["one-paragraph", "paragraphs"])
@pytest.mark.parametrize("vocab", [live_training.BYTE_VOCABULARY, 512], ids=["characters", "bpe"])
@pytest.mark.parametrize("preset", list(PRESETS))
def test_the_text_minimum_the_page_applies_is_the_trainers(preset, vocab, separator):
    """Issue 13 A: a text the page accepts always starts a run, and one it refuses never could."""
    config = PRESETS[preset]
    verdicts = []
    for characters in (300, 600, 1000, 1500, 2000, 2500, 3000, 4000, 6000, 9000):
        text = story_text(characters, separator)
        data = live_training.training_data("text", text, vocab)
        problem = live_training.too_short(data, config)
        try:
            TrainingRun(config, data, probe_text="Once upon a time", sample_prompt="Once")
            starts = True
        except ValueError:
            starts = False
        assert starts == (problem is None), (characters, problem)
        if problem:  # one sentence: how long the text is, how long it must be, and why
            need = live_training.tokens_needed(config)
            assert problem.count(". ") == 0 and problem.endswith(".")
            assert f"{len(text):,} characters" in problem and f"at least {need:,} of each" in problem
            assert f"context length of {config.block_size}" in problem and "validat" in problem
        verdicts.append(starts)
    assert verdicts[0] is False and verdicts[-1] is True  # both sides of the minimum were tried


def test_tokens_needed_is_exactly_the_trainers_condition():
    need = live_training.tokens_needed(TINY)
    ids = torch.arange(need) % 50  # [need]
    Trainer(TINY, ids, ids, 64, eos_token_id=0)  # accepted
    for train, val in ((ids[:-1], ids), (ids, ids[:-1])):
        with pytest.raises(ValueError):
            Trainer(TINY, train, val, 64, eos_token_id=0)


def test_the_issues_texts_are_refused_with_the_reason():
    """A run of the 1-minute preset on 5,000 a's with a BPE (2 training tokens before long words were cut;
    now 72, but 10 for validation) or on too little English; the sentence points a BPE's student to the Characters tokenizer."""
    config = PRESETS["1-minute"]
    a_5000 = live_training.training_data("text", "a" * 5000, 512)
    assert min(len(a_5000.train_ids), len(a_5000.val_ids)) < live_training.tokens_needed(config)
    assert "Your text has 5,000 characters" in live_training.too_short(a_5000, config)
    assert "choose the “Characters” tokenizer" in live_training.too_short(a_5000, config)
    as_bytes = live_training.training_data("text", "a" * 100, live_training.BYTE_VOCABULARY)
    assert "Characters" not in live_training.too_short(as_bytes, config)  # it is the one in use
    short = live_training.training_data("text", story_text(1500, " "), 512)
    assert "Your text has 1,500 characters" in live_training.too_short(short, config)
    with pytest.raises(ValueError):
        TrainingRun(config, short, probe_text="Once upon a time", sample_prompt="Once")


def test_prepared_data_and_tokenizer_choices(copy_data):
    assert copy_data.vocab_size == live_training.BYTE_VOCABULARY
    assert copy_data.tokens_per_character == pytest.approx(1.0, abs=0.05)  # bytes: one token per ASCII character
    bpe = live_training.prepare_data(copy_task.copy_task_documents(400), 300)
    assert 257 < bpe.vocab_size <= 300 and bpe.tokens_per_character < copy_data.tokens_per_character
    assert len(copy_data.val_ids) < len(copy_data.train_ids) / 5


def test_a_run_trains_in_its_thread_and_records_what_the_page_draws(copy_data):
    run = finished_run(copy_data)
    view = run.view()
    assert view.status == "finished" and view.step == TINY.max_steps and len(view.train_loss) == TINY.max_steps
    assert view.validation[0][0] == 0 and view.validation[-1][0] == TINY.max_steps
    assert view.validation[-1][1] < view.validation[0][1]  # it learned something
    assert view.validation[0][1] == pytest.approx(live_training.uniform_loss(copy_data.vocab_size), abs=0.5)
    assert [step for step, _ in view.samples] == [0, 10, 20, 30]
    step, patterns = view.snapshots[-1]
    assert patterns.shape[:2] == (TINY.n_layer, TINY.n_head)
    torch.testing.assert_close(patterns.sum(-1), torch.ones(patterns.shape[:-1]))
    assert set(view.layer_grad_norms) == {"embeddings", "block 0", "final LayerNorm"}
    assert all(len(v) == TINY.max_steps for v in view.update_ratios.values())


def test_pause_and_resume_give_the_uninterrupted_result(copy_data):
    straight = finished_run(copy_data)
    slots = training_run.TrainingSlots(1)
    interrupted = run_for(copy_data, slots=slots)
    interrupted.start()
    assert wait_for(lambda: interrupted.view().step >= 5)
    interrupted.pause()
    assert wait_for(lambda: slots.acquire(-1, timeout=0))  # the paused worker gave its slot up
    slots.release(-1)
    paused_at = interrupted.view().step
    time.sleep(0.3)  # a window with the slot free: a paused run takes no step in it (no bound on speed)
    assert interrupted.view().step == paused_at and interrupted.status == "paused"
    interrupted.resume()
    interrupted.wait(timeout=120)
    assert interrupted.view().train_loss == straight.view().train_loss


def test_stop_ends_a_running_run(copy_data):
    run = run_for(copy_data, replace(TINY, max_steps=100_000))
    run.start()
    assert wait_for(lambda: run.view().step > 0)
    run.stop()
    run.wait(timeout=60)
    assert run.status == "stopped" and not run._thread.is_alive() and run.view().step < 100_000


def test_a_closed_page_ends_the_run(copy_data):
    run = run_for(copy_data, replace(TINY, max_steps=100_000), abandon_after=0.3)
    run.start()
    run.wait(timeout=60)  # nobody calls touch()
    assert run.status == "stopped" and "closed" in run.message


def test_a_diverging_run_stops_with_an_explanation(copy_data):
    run = finished_run(copy_data, replace(TINY, learning_rate=1e6, grad_clip=1e9, max_steps=200), timeout=60)
    assert run.status == "diverged" and "learning rate" in run.message


def test_the_saved_model_loads_in_the_other_lessons(copy_data):
    from core.glassbox import run_trace
    from core.models import load_model

    run = finished_run(copy_data)
    loaded = load_model(str(run.save()))
    trace = run_trace(loaded.model, loaded.tokenizer("ab cd | ab")["input_ids"])
    assert trace.n_layer == TINY.n_layer
    import io
    import zipfile

    names = zipfile.ZipFile(io.BytesIO(run.zip_bytes())).namelist()
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(names)
    folder = run.save()
    assert not list(folder.parent.glob(folder.name + "-zip*"))  # the archive file is not left behind


def test_saved_models_are_deleted_when_the_app_ends(tmp_path):
    import subprocess
    import sys

    script = (
        "from dataclasses import replace\n"
        "from core import copy_task, live_training, training_run\n"
        "data = live_training.prepare_data(copy_task.copy_task_documents(200), live_training.BYTE_VOCABULARY)\n"
        "config = replace(live_training.PRESETS['1-minute'], n_layer=1, n_head=2, n_embd=32, block_size=32,"
        " batch_size=4, max_steps=2)\n"
        "run = training_run.TrainingRun(config, data, probe_text='ab | ab', sample_prompt='ab |')\n"
        "print(run.save())\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=str(Path(__file__).resolve().parent.parent), env={**os.environ, "TMPDIR": str(tmp_path)})
    folder = Path(done.stdout.strip().splitlines()[-1])
    assert folder.parent == tmp_path and folder.name.startswith("glassbox-trained-")
    assert not folder.exists()


def test_step_time_is_measured():
    seconds = live_training.measure_step_seconds(TINY, 64)
    assert 0 < seconds and math.isfinite(seconds)
    assert live_training.estimate_parameters(TINY, 64) == \
        sum(p.numel() for p in Trainer(TINY, torch.arange(99) % 64, torch.arange(99) % 64, 64, 0).model.parameters())


@pytest.mark.parametrize("vocab", [2, 257, 512, 50257])
def test_uniform_loss_is_the_loss_of_a_model_that_gives_every_token_the_same_probability(vocab):
    equal_logits = torch.full((5, vocab), 3.7)  # [predictions, vocab]: any constant logit
    targets = torch.randint(0, vocab, (5,), generator=torch.Generator().manual_seed(vocab))
    loss = torch.nn.functional.cross_entropy(equal_logits, targets)
    assert live_training.uniform_loss(vocab) == pytest.approx(float(loss), rel=1e-6)


def test_the_run_ends_when_the_app_says_the_session_is_gone(copy_data):
    open_now = {"value": True}
    run = run_for(copy_data, replace(TINY, max_steps=100_000), abandon_after=0.3)
    run.attach(lambda: open_now["value"])
    run.start()
    assert wait_for(lambda: run.view().step > 0) and run.status == "running"
    open_now["value"] = False
    run.wait(timeout=60)
    assert run.status == "stopped" and "closed" in run.message


def test_a_reloaded_page_finds_its_run_again_and_the_run_ends_only_when_every_page_is_gone(copy_data):
    """A reload is a new session: the old one's check turns False at once. Within the grace period
    the new session finds the run by the token in its address and attaches; the run trains on past
    the grace, and stops once the new session is gone too."""
    first_page, reloaded_page = {"open": True}, {"open": True}
    run = run_for(copy_data, replace(TINY, max_steps=100_000), abandon_after=1.0)
    run.attach(lambda: first_page["open"])
    token = RUNS.add(run)
    run.start()
    assert wait_for(lambda: run.view().step > 0)
    first_page["open"] = False  # the reload: the old session is gone
    found = RUNS.find(token)
    assert found is run and RUNS.find("not-a-token") is None and RUNS.find(None) is None
    found.attach(lambda: reloaded_page["open"])
    time.sleep(1.5)  # past the grace period: the run lives because the reloaded page is open
    assert run.status == "running"
    step_then = run.view().step
    assert wait_for(lambda: run.view().step > step_then)
    reloaded_page["open"] = False
    run.wait(timeout=60)
    assert run.status == "stopped" and "closed" in run.message
    assert RUNS.find(token) is None  # ended, and no page shows it: forgotten


def test_the_page_that_started_a_run_controls_it_and_after_a_reload_the_page_that_came_back():
    """Attended.may_control: a second page with the run's address (a shared link) only watches
    while the owner's page is open; once the owner's page is gone (a reload), the first page back
    takes control, and the old one does not get it back."""
    from core.training_run import Attended

    owner_open, reloaded_open = {"open": True}, {"open": True}
    run = Attended()
    assert run.may_control("owner", lambda: owner_open["open"])
    assert not run.may_control("classmate", lambda: True)
    assert run.may_control("owner", lambda: owner_open["open"])  # its own page, again
    owner_open["open"] = False  # the reload
    assert run.may_control("reloaded", lambda: reloaded_open["open"])
    assert not run.may_control("classmate", lambda: True) and not run.may_control("owner", None)
    unknown = Attended()
    assert unknown.may_control("first", None) and not unknown.may_control("second", None)  # no check: present


def test_runs_of_two_students_at_once_do_not_touch_each_other(copy_data):
    alone = finished_run(copy_data)
    first, second = run_for(copy_data), run_for(copy_data, replace(TINY, learning_rate=1e-2))
    first.start()
    second.start()
    first.wait(timeout=120)
    second.wait(timeout=120)
    assert first.view().train_loss == alone.view().train_loss  # as if it had trained alone
    assert second.view().train_loss != first.view().train_loss
    assert first.trainer.model is not second.trainer.model


# --- the copy task -------------------------------------------------------------------------------
COPY_TINY = replace(PRESETS["1-minute"], n_layer=1, n_head=2, n_embd=32, block_size=16, batch_size=32,
                    max_steps=1000, warmup_steps=20)


@pytest.fixture(scope="module")
def copy_bpe():
    return live_training.training_data("copy", "", 512)


def test_every_copy_line_is_two_copies_the_same_distance_apart(copy_bpe):
    line = copy_task.copy_test_lines(1)[0]
    first_half = line.split(" |")[0]
    assert line == f"{first_half} | {first_half}" and len(set(first_half.split())) == copy_task.COPY_LINE_WORDS
    byte_ids = list(line.encode())  # characters: the second copy starts len("xxx " * 6 + "| ") bytes later
    assert copy_task.copy_distance(byte_ids) == len(first_half) + len(" | ")
    for test_line in copy_task.copy_test_lines():  # the BPE holds every word as one token: 6 words and " |"
        ids = copy_bpe.tokenizer(test_line)["input_ids"]
        assert len(ids) == 13 and copy_task.copy_distance(ids) == 7
    assert copy_task.copy_distance([5, 6, 7, 8, 9]) is None


def test_copy_examples_begin_at_a_line_start(copy_bpe):
    eos = copy_bpe.tokenizer.convert_tokens_to_ids(corpus.END_OF_TEXT)
    trainer = Trainer(COPY_TINY, copy_bpe.train_ids, copy_bpe.val_ids, copy_bpe.vocab_size, eos, start_at_documents=True)
    batch = trainer.batch(copy_bpe.train_ids, torch.Generator().manual_seed(0), trainer.train_starts)
    for row in batch.tolist():  # each row is a whole line: 13 tokens, then the end-of-text token
        assert row[13] == eos and eos not in row[:13] and copy_task.copy_distance(row[:13]) == 7
    anywhere = Trainer(COPY_TINY, copy_bpe.train_ids, copy_bpe.val_ids, copy_bpe.vocab_size, eos)
    rows = anywhere.batch(copy_bpe.train_ids, torch.Generator().manual_seed(0)).tolist()
    assert any(row[13] != eos for row in rows)  # without the option a window starts anywhere


def test_the_copy_score_equals_a_direct_computation(copy_bpe):
    model = random_gpt2(n_layer=2, n_head=2, n_embd=32, n_positions=16, vocab_size=copy_bpe.vocab_size, seed=3)
    lines = copy_task.copy_test_lines(5)
    score = copy_task.copy_task_score(model, copy_bpe.tokenizer, lines)
    correct, on_copy = 0, torch.zeros(2, 2)  # [layer, head]
    for line in lines:
        ids = copy_bpe.tokenizer(line)["input_ids"]
        with torch.no_grad():
            out = model(input_ids=torch.tensor([ids]), output_attentions=True)
        for query in range(7, 12):  # positions 7..11 predict the second copy's tokens 2..6 (ids[8..12])
            correct += int(out.logits[0, query].argmax()) == ids[query + 1]
            for layer in range(2):
                on_copy[layer] += out.attentions[layer][0, :, query, query + 1 - 7]
    assert score.predictions == 25 and score.accuracy == pytest.approx(correct / 25)
    best = on_copy / 25
    assert (score.layer, score.head) == divmod(int(best.argmax()), 2)
    assert score.attention == pytest.approx(float(best.max()), abs=1e-5)


def test_the_copy_task_grows_a_head_that_looks_back_to_the_earlier_copy(copy_bpe):
    eos = copy_bpe.tokenizer.convert_tokens_to_ids(corpus.END_OF_TEXT)
    trainer = Trainer(COPY_TINY, copy_bpe.train_ids, copy_bpe.val_ids, copy_bpe.vocab_size, eos, start_at_documents=True)
    lines = copy_task.copy_test_lines()
    assert copy_task.copy_task_score(trainer.model, copy_bpe.tokenizer, lines).accuracy < 0.1  # untrained: chance
    for _ in range(COPY_TINY.max_steps):
        trainer.step()
    final = copy_task.copy_task_score(trainer.model, copy_bpe.tokenizer, lines)
    assert final.accuracy >= 0.9 and final.attention >= 0.8


def test_a_copy_run_scores_the_copy_test_at_every_evaluation(copy_bpe):
    run = TrainingRun(replace(COPY_TINY, max_steps=30), copy_bpe, probe_text="cat sun owl | cat sun owl",
                      sample_prompt="fox jam | fox", cadence=Cadence(10, 10, 10),
                      copy_test_lines=copy_task.copy_test_lines(3))
    run.start()
    run.wait(timeout=60)
    scores = run.view().copy_scores
    assert [step for step, _ in scores] == [0, 10, 20, 30] and all(s.predictions == 15 for _, s in scores)
    assert run_for(copy_bpe, replace(COPY_TINY, max_steps=30)).view().copy_scores == []  # other runs: no test


# --- many students, few cores ----------------------------------------------------------------------
def test_runs_beyond_the_machines_slots_wait_their_turn_and_a_paused_run_gives_its_slot_away(copy_data):
    slots = training_run.TrainingSlots(1)
    long = replace(TINY, max_steps=100_000)
    first, second, third = (run_for(copy_data, long, slots=slots) for _ in range(3))
    first.start()
    assert wait_for(lambda: first.view().step > 0)
    second.start()
    third.start()
    assert wait_for(lambda: third.view().waiting == 2)
    assert second.view().waiting == 1 and second.view().step == 0 and first.view().waiting == 0
    assert second.view().slots == 1

    first.pause()  # its slot goes to the first in the queue
    assert wait_for(lambda: second.view().step > 0) and third.view().waiting == 1
    first.resume()  # and it queues again, behind the third
    assert wait_for(lambda: first.view().waiting == 2)
    paused_at = first.view().step
    third.stop()  # a waiting run can be stopped, and leaves the queue
    assert wait_for(lambda: third.status == "stopped") and third.view().step == 0
    assert wait_for(lambda: first.view().waiting == 1)
    second.stop()
    assert wait_for(lambda: first.view().step > paused_at)  # the slot came back
    first.stop()
    for run in (first, second, third):
        run.wait(timeout=60)
    assert slots.runs_ahead(first.serial) == 0 and slots.acquire(999, timeout=0)  # every slot was released


@pytest.mark.parametrize("files, cap", [
    ({"cpu.max": "100000 100000\n"}, 1), ({"cpu.max": "50000 100000\n"}, 1), ({"cpu.max": "max 100000\n"}, None),
    ({"cpu/cpu.cfs_quota_us": "100000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 1),
    ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None), ({}, None),
])
def test_available_cores_follow_a_containers_cpu_quota(tmp_path, files, cap):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    allowed = len(os.sched_getaffinity(0))
    assert training_run.available_cores(tmp_path) == (allowed if cap is None else min(allowed, cap))


def test_the_lesson_quotes_the_vocabularies_the_page_builds(copy_bpe, copy_data):
    """Lesson 7's numbers on the tokenizers are the page's: characters are 257 tokens (the bytes and
    end of text), and the copy task's BPE, asked for 512, stops where the text has no more merges."""
    import re

    from core.course import APP_DIR, LESSONS

    text = " ".join((APP_DIR / "lessons" / LESSONS[6].markdown).read_text(encoding="utf-8").split())
    assert f"a vocabulary of {copy_data.vocab_size}," in text and copy_data.vocab_size == live_training.BYTE_VOCABULARY
    asked, stops, between = re.search(r"asked for (\d+) tokens, it stops at (\d+):.*? and (\d+) merges on the way",
                                      text).groups()
    assert int(asked) == 512 and int(stops) == copy_bpe.vocab_size < 512
    vocabulary = copy_bpe.tokenizer.get_vocab()
    words = [w for w in copy_task.COPY_WORDS if w in vocabulary and "Ġ" + w in vocabulary]
    singles = [t for t in vocabulary if len(t) == 1]
    assert len(words) == len(copy_task.COPY_WORDS) and len(singles) == 256 and "Ġ|" in vocabulary
    assert int(between) == len(vocabulary) - 256 - 1 - 2 * len(words) - 1  # bytes, end of text, words, " |"


def test_a_learning_rate_of_1_throws_the_loss_far_above_the_uniform_guess_as_lesson_7_says():
    """Lesson 7: "the loss climbed from about 6 to more than 30 within 100 steps, far above the
    uniform guess, and stayed above that guess" (the 1-minute preset on the stories, as the page
    trains it; here up to step 120)."""
    from tests.conftest import lesson_text, quoted

    start, high, steps = quoted(r"the loss climbed from about (\d+) to more than (\d+) within (\d+)\s+steps",
                                lesson_text("07_training.md"))
    data = live_training.training_data("stories", "", 512)
    config = replace(PRESETS["1-minute"], learning_rate=1.0)  # its 600-step schedule; 120 steps taken
    trainer = Trainer(config, data.train_ids, data.val_ids, data.vocab_size, 0)
    losses = [trainer.step().loss for _ in range(120)]
    assert round(losses[0]) == int(start)
    assert max(losses[:int(steps)]) > int(high)
    assert min(losses[int(steps) // 2:]) > live_training.uniform_loss(data.vocab_size)


def test_a_run_whose_training_fails_says_so_in_one_sentence_and_is_no_longer_active(copy_data, monkeypatch, caplog):
    """A run's thread that raised left its run "running" forever (seen with settings no model could
    be built with, since refused before Start): it now ends "failed", says so once, keeps its
    progress, and the traceback goes to the server's log."""
    run = run_for(copy_data, replace(TINY, max_steps=100_000))
    steps = {"taken": 0}
    step = run.trainer.step

    def step_then_fail(**options):
        steps["taken"] += 1
        if steps["taken"] > 3:
            raise RuntimeError("The size of tensor a (4) must match the size of tensor b (3)")
        return step(**options)

    monkeypatch.setattr(run.trainer, "step", step_then_fail)
    run.start()
    run.wait(timeout=60)
    assert not run._thread.is_alive()
    assert run.status == "failed" and not run.is_active and run.view().step == 3
    assert run.message == ("This run stopped with an error (RuntimeError); its progress so far is shown. "
                           "Press Start to train again.")
    assert "training run" in caplog.text and "must match the size" in caplog.text


def test_a_megabyte_of_one_letter_is_cut_into_words_a_bpe_can_learn_from():
    """A hostile paste: a megabyte of "a" is one GPT-2 pre-token, and the BPE trainer's time grows
    with the square of a word's length (200,000 a's took 35 s, a megabyte kept the page busy for
    many minutes). Words are cut at LONGEST_PRETOKEN bytes; ordinary prose is cut exactly as before."""
    from tokenizers import pre_tokenizers

    from core.tokenization import LONGEST_PRETOKEN, pretokens

    data = live_training.training_data("text", "a" * 1_000_000, 512)
    pieces = pretokens(data.tokenizer, "a" * 1000)
    assert max(map(len, pieces)) == LONGEST_PRETOKEN and "".join(pieces) == "a" * 1000
    assert len(data.train_ids) + len(data.val_ids) >= 1_000_000 // LONGEST_PRETOKEN  # one token a piece at most merged
    prose = story_text(3000, " ")
    gpt2_words = [piece for piece, _ in pre_tokenizers.ByteLevel(add_prefix_space=False).pre_tokenize_str(prose)]
    assert pretokens(data.tokenizer, prose) == gpt2_words
    assert data.tokenizer.decode(data.tokenizer(prose)["input_ids"]) == prose


def test_after_the_server_s_warm_up_lesson_7_prepares_no_data_at_its_first_visit(monkeypatch):
    """Lesson 7's first visit trained the default text's BPE while the student waited (1-2 s of its
    2-5 s on two cores); the warm-up a server starts with Home (course_ui.warm_up) now prepares it."""
    from streamlit.testing.v1 import AppTest

    import course_ui
    from core.cached import cached_training_data
    from core.course import APP_DIR, LESSONS

    cached_training_data.clear()  # as on a fresh server
    course_ui.warm_up()
    prepared, prepare = [], live_training.training_data
    monkeypatch.setattr(live_training, "training_data", lambda *args: prepared.append(args) or prepare(*args))
    app = AppTest.from_file(str(APP_DIR / "Home.py"), default_timeout=120)
    app.run()
    app.switch_page(LESSONS[6].page).run()
    assert not app.exception, [e.value for e in app.exception]
    assert prepared == []  # the page found the warm-up's data
    assert [m.value for m in app.metric if m.label == "Vocabulary"] == [f"{live_training.DEFAULT_BPE_VOCABULARY}"]
    assert (app.session_state["t_source"], app.session_state["t_vocab"]) == (live_training.DEFAULT_SOURCE,
                                                                             live_training.DEFAULT_BPE_VOCABULARY)


def test_an_uploaded_file_is_trained_on_before_pasted_text_and_the_page_is_told():
    """A hostile-student pass (from the code): with a file uploaded, pasted text was ignored without a
    word. The file still wins; a sentence says so when both are there (the browser test uploads one)."""
    assert live_training.students_text(None, "pasted") == (b"pasted", None)
    assert live_training.students_text(b"file", "") == (b"file", None)
    assert live_training.students_text(b"file", "  \n") == (b"file", None)
    raw, said = live_training.students_text(b"file", "pasted")
    assert raw == b"file" and said.startswith("Training uses the uploaded file, not the pasted text")
