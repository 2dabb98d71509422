"""Benchmarks of the Training lesson: `python bench/bench_training.py`. Prints figures; asserts nothing.

- throughput (tokens per second) of each preset on the stories (512-token BPE): the lesson's
  trainer, measuring every layer's gradient norm and update ratio as the live views need,
  against a plain PyTorch loop (Hugging Face forward, backward, clipping, AdamW) on the same
  model and batches, steps interleaved, for the GPT-2 design and the Llama design. Goal (issue 17): trainer time /
  plain time ≤ 1.05.
- bfloat16 against float32, and the Shakespeare preset end to end (bench_training_options.py's).
- the whole "1-minute" preset as the lesson runs it (validation, samples and attention snapshots
  included): wall time, validation loss against the uniform guess, the last sample.
- the copy task under the same preset (BPE and characters; examples from a line's start, and
  for contrast from anywhere): when the copying appears and the head that does it.
- four students starting that preset at the same moment: all training at once against the
  app's queue of training slots.
- the same preset in the real app (`streamlit run Home.py`, headless Chromium on the same two
  cores): the tokens per second the page reports while its live charts redraw, and its wall time.
"""
from __future__ import annotations

import re
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from core import corpus, live_training, training_run  # noqa: E402
from core.copy_task import copy_task_score, copy_test_lines  # noqa: E402
from core.live_training import PRESETS  # noqa: E402
from core.training_run import Cadence, TrainingRun  # noqa: E402
from core.training import Trainer, new_model  # noqa: E402

STEPS = 30


def paired_step_seconds(config, data, steps: int = STEPS) -> tuple[float, float]:
    """Median seconds per step of the lesson's trainer (measuring every layer, as the live views
    need) and of the textbook loop (Hugging Face forward, backward, clipping, AdamW) on the same
    model shape and batches, their steps interleaved so that both meet the same machine (other
    processes on two cores swing either one's time by half)."""
    trainer = Trainer(config, data.train_ids, data.val_ids, data.vocab_size, 0)
    model = new_model(config, data.vocab_size, 0)
    model.train()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=config.learning_rate,
                                  betas=(0.9, 0.95))
    sampler = Trainer(config, data.train_ids, data.val_ids, data.vocab_size, 0)  # only for its batches

    def plain_step() -> None:
        inputs = sampler.batch(data.train_ids, sampler.sampler)
        loss = model(input_ids=inputs, labels=inputs).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()

    def timed(step) -> float:
        began = time.perf_counter()
        step()
        return time.perf_counter() - began

    ours, plain = [], []
    for _ in range(steps + 2):  # the first two of each: warm-up
        ours.append(timed(lambda: trainer.step(measure_layers=True)))
        plain.append(timed(plain_step))
    return statistics.median(ours[2:]), statistics.median(plain[2:])


def run_to_the_end(run: TrainingRun) -> float:
    """Start a run, keep it alive as an open page would, and return its wall time in seconds."""
    began = time.perf_counter()
    run.start()
    while run.is_active:
        run.touch()
        time.sleep(0.2)
    return time.perf_counter() - began


def whole_run(config, data) -> None:
    run = TrainingRun(config, data, "Once upon a time, there was a girl named Mia.", "Once upon a time,")  # the page's cadence
    seconds = run_to_the_end(run)
    view = run.view()
    print(f"1-minute preset, whole run: {view.status}, {view.step} steps in {seconds:.1f} s; "
          f"validation loss {view.validation[0][1]:.2f} -> {view.validation[-1][1]:.2f} "
          f"(uniform guess ln {data.vocab_size} = {live_training.uniform_loss(data.vocab_size):.2f})")
    print(f"  sample at step {view.samples[-1][0]}: {view.samples[-1][1]!r}")


def copy_task(vocab_size: int, start_at_documents: bool = True, every: int = 50) -> None:
    """The "1-minute" preset on the copy task, scored on 100 new lines every `every` steps: when
    the copying appears, and which head does it. Steps and scores are seeded, so they are the same
    in the app; the time is this process's main thread."""
    data = live_training.training_data("copy", "", vocab_size)
    config = PRESETS["1-minute"]
    eos = data.tokenizer.convert_tokens_to_ids(corpus.END_OF_TEXT)
    trainer = Trainer(config, data.train_ids, data.val_ids, data.vocab_size, eos, start_at_documents)
    lines = copy_test_lines(100)
    began, history = time.perf_counter(), []
    while trainer.step_count < config.max_steps:
        trainer.step()
        if trainer.step_count % every == 0:
            history.append((trainer.step_count, copy_task_score(trainer.model, data.tokenizer, lines)))
    seconds = time.perf_counter() - began
    final = history[-1][1]
    first = next((step for step, score in history if score.accuracy >= 0.9), None)
    where = "at a line's start" if start_at_documents else "anywhere in the text"
    print(f"copy task, {data.vocab_size}-token vocabulary, examples starting {where}: {config.max_steps} steps in "
          f"{seconds:.0f} s; accuracy on the second copies by step "
          + ", ".join(f"{step}: {score.accuracy:.0%}" for step, score in history[1::2])
          + (f"; first >= 90% at step {first}" if first else "; never 90% or more")
          + f"; best head at the end: layer {final.layer}, head {final.head}, "
            f"{final.attention:.2f} of its attention on the earlier copy")


def many_students(data, students: int = 4, steps: int = 60) -> None:
    """`students` runs of the "1-minute" preset started together: all training at once, against
    the app's queue (TRAINING_SLOTS). Wall time until all are done, and the mean time a student
    waits for a finished run."""
    config = replace(PRESETS["1-minute"], max_steps=steps)
    tokens = students * steps * config.batch_size * config.block_size
    for slots in (training_run.TrainingSlots(students), training_run.TrainingSlots(training_run.TRAINING_SLOTS.count)):
        runs = [TrainingRun(config, data, "Once upon a time", "Once", Cadence(*[10 * steps] * 3), slots=slots)
                for _ in range(students)]
        done = seconds_until_done(runs)
        wall = max(done)
        print(f"{students} students, {steps} steps each, {slots.count} training at a time: all done in {wall:.1f} s "
              f"({tokens / wall:,.0f} tok/s in total); a student waits {statistics.mean(done):.1f} s "
              f"on average for a finished run")


def seconds_until_done(runs) -> list[float]:
    """Start `runs` together, their students' pages kept open, and return how long each took to end."""
    for run in runs:
        run.attach(lambda: True)  # every student's page stays open
    began, done = time.perf_counter(), {}
    for run in runs:
        run.start()
    while len(done) < len(runs):
        for index, run in enumerate(runs):
            if index not in done and not run.is_active:
                done[index] = time.perf_counter() - began
        time.sleep(0.02)
    return [done[index] for index in range(len(runs))]


def in_the_app() -> None:
    """The "1-minute" preset started in the real app: tokens per second as the page reports them
    every 2 s, and the time from the first loss chart to the finished run."""
    from tests.streamlit_server import STUDENT_BROWSERS, browser_page, running_app, start_training_run

    steps = PRESETS["1-minute"].max_steps
    with running_app() as (url, _, _), browser_page(STUDENT_BROWSERS) as page:
        start_training_run(page, url)
        began = time.perf_counter()
        readings = []
        while not page.get_by_text(f"Finished {steps} steps.").count() and time.perf_counter() - began < 300:
            page.wait_for_timeout(2_000)
            text = page.locator('[data-testid="stMetric"]:has-text("Tokens per second")').first.inner_text()
            readings.append(float(re.sub(r"[^0-9.]", "", text.split("\n")[-1]) or 0))
        finished = time.perf_counter() - began
        loss = page.locator('[data-testid="stMetric"]:has-text("Validation loss")').first.inner_text().split("\n")[-1]
    print(f"in the app (1-minute preset, live charts redrawn every two seconds): "
          f"{statistics.median(readings):,.0f} tokens/s (median of {len(readings)} readings); "
          f"{steps} steps finished {finished:.0f} s after the first chart; validation loss {loss}")


def throughput(data) -> None:
    print(f"== throughput, median of {STEPS} interleaved steps, stories with a {data.vocab_size}-token BPE, 2 threads ==")
    for name, preset in PRESETS.items():
        for architecture in ("gpt2", "llama"):
            config = replace(preset, architecture=architecture)
            ours, plain = paired_step_seconds(config, data)
            tokens = config.batch_size * config.block_size
            print(f"{name:11s} {architecture:5s} trainer {tokens / ours:8,.0f} tok/s   plain loop {tokens / plain:8,.0f} "
                  f"tok/s   trainer time / plain time {ours / plain:5.2f}", flush=True)


def main(parts: list[str]) -> None:
    """`parts`: any of run, students, copy, throughput, precision, shakespeare, app (default: all)."""
    from bench.bench_training_options import precision, shakespeare

    torch.set_num_threads(2)
    data = live_training.prepare_data(live_training.story_documents(), 512)
    # The lesson's run first: a thread that trains runs up to 2x slower once the main thread has
    # done PyTorch work of its own (measured; a thread that has ended costs nothing). In the app,
    # page scripts run in short-lived threads, as here.
    steps = {
        "run": ("the lesson's run", lambda: whole_run(PRESETS["1-minute"], data)),
        "students": ("several students at once", lambda: many_students(data)),  # threads: before the main thread trains
        "copy": ("the copy task (1-minute preset, scored on 100 new lines)",
                 lambda: (copy_task(512), copy_task(live_training.BYTE_VOCABULARY), copy_task(512, False))),
        "throughput": (None, lambda: throughput(data)),
        "precision": ("bfloat16 against float32 (1-minute preset, 300 steps)", lambda: precision(data)),
        "shakespeare": ("the Shakespeare preset, end to end", shakespeare),
        "app": ("in the app", in_the_app),
    }
    for part in parts or list(steps):
        heading, measure = steps[part]
        if heading:
            print(f"== {heading} ==", flush=True)
        measure()


if __name__ == "__main__":
    main(sys.argv[1:])
