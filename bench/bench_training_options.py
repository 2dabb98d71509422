"""Training, part two, measured: `python bench/bench_training_options.py`. Prints figures; asserts nothing.

- bfloat16 autocast against float32 on this CPU: time per step and validation loss after 300 steps
- torch.compile: its compile time and its step time, and whether it pays within the 1-minute preset
- the copy task with examples starting anywhere: the GPT-2 design and the Llama design, same budget
- the Shakespeare preset end to end: validation loss and a sample at the end
"""
from __future__ import annotations

import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from core import copy_task, live_training  # noqa: E402
from core.live_training import PRESETS  # noqa: E402
from core.training_run import Cadence, TrainingRun  # noqa: E402
from core.sampling import Strategy, generate  # noqa: E402
from core.training import Trainer  # noqa: E402
from bench.bench_training import run_to_the_end  # noqa: E402


def seconds_per_step(trainer: Trainer, steps: int = 20) -> float:
    trainer.step()
    times = []
    for _ in range(steps):
        began = time.perf_counter()
        trainer.step()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def precision(data) -> None:
    for name in ("float32", "bfloat16"):
        config = replace(PRESETS["1-minute"], precision=name, max_steps=300)
        trainer = Trainer(config, data.train_ids, data.val_ids, data.vocab_size, 0)
        began = time.perf_counter()
        for _ in range(config.max_steps):
            trainer.step()
        wall = time.perf_counter() - began
        print(f"{name:9s} 300 steps in {wall:5.1f} s ({wall / 300 * 1000:5.1f} ms/step), "
              f"validation loss {trainer.validation_loss():.3f}")


def compiled(data) -> None:
    config = PRESETS["1-minute"]
    plain = Trainer(config, data.train_ids, data.val_ids, data.vocab_size, 0)
    plain_step = seconds_per_step(plain)
    trainer = Trainer(config, data.train_ids, data.val_ids, data.vocab_size, 0)
    began = time.perf_counter()
    trainer.model = torch.compile(trainer.model)
    try:
        trainer.step()  # the first step compiles
    except Exception as error:  # noqa: BLE001 - a failure to compile is a finding too
        print(f"torch.compile: failed on this machine ({type(error).__name__}: {str(error)[:120]})")
        return
    compile_seconds = time.perf_counter() - began
    compiled_step = seconds_per_step(trainer)
    saved = (plain_step - compiled_step) * config.max_steps
    print(f"torch.compile: first step {compile_seconds:.1f} s; step {compiled_step * 1000:.1f} ms vs "
          f"{plain_step * 1000:.1f} ms plain; over the preset's {config.max_steps} steps it saves {saved:.1f} s, "
          f"so it {'pays' if saved > compile_seconds else 'does not pay'} for its compile time")


def copy_anywhere(architecture: str, every: int = 100) -> None:
    data = live_training.training_data("copy", "", 512)
    config = replace(PRESETS["1-minute"], architecture=architecture, n_kv_head=2 if architecture == "llama" else 0)
    trainer = Trainer(config, data.train_ids, data.val_ids, data.vocab_size, 0, start_at_documents=False)
    lines = copy_task.copy_test_lines(100)
    history, began = [], time.perf_counter()
    while trainer.step_count < config.max_steps:
        trainer.step()
        if trainer.step_count % every == 0:
            history.append((trainer.step_count, copy_task.copy_task_score(trainer.model, data.tokenizer, lines)))
    final = history[-1][1]
    print(f"copy task, examples starting anywhere, {architecture:5s}: {config.max_steps} steps in "
          f"{time.perf_counter() - began:.0f} s; accuracy by step "
          + ", ".join(f"{step}: {score.accuracy:.0%}" for step, score in history)
          + f"; best head layer {final.layer}, head {final.head}, {final.attention:.2f} on the earlier copy")


def shakespeare() -> None:
    data = live_training.training_data("shakespeare", "", live_training.BYTE_VOCABULARY)
    config = PRESETS["Shakespeare"]
    run = TrainingRun(config, data, "First Citizen:\nBefore we proceed any further, hear me speak.", "ROMEO:\n",
                      cadence=Cadence(eval_every=100, sample_every=500, snapshot_every=500))
    seconds = run_to_the_end(run)
    view = run.view()
    text = data.tokenizer.decode(generate(run.trainer.model, data.tokenizer("ROMEO:\n")["input_ids"], 120,
                                          Strategy(0.8, 0, 1.0), seed=0).new_ids)
    print(f"Shakespeare preset: {view.status}, {view.step} steps in {seconds:.0f} s; validation "
          f"loss {view.validation[0][1]:.2f} -> {view.validation[-1][1]:.2f} (uniform ln 257 = 5.55)")
    print(f"  sample (T = 0.8, seed 0) after 'ROMEO:\\n': {text!r}")


def main() -> None:
    torch.set_num_threads(2)
    if sys.argv[1:] == ["shakespeare"]:
        shakespeare()
        return
    data = live_training.prepare_data(live_training.story_documents(), 512)
    print("== precision: bfloat16 autocast vs float32 (1-minute preset, 300 steps) ==")
    precision(data)
    print("== torch.compile (1-minute preset) ==")
    compiled(data)
    print("== the copy task, examples starting anywhere in the text (1-minute preset) ==")
    copy_anywhere("gpt2")
    copy_anywhere("llama")
    print("== the Shakespeare preset, end to end ==")
    shakespeare()


if __name__ == "__main__":
    main()
