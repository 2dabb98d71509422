"""Rebuild the bundled course models from nothing.

    python -m core.build_course_model                       # GPT-2 design -> models/glassbox-stories/
    python -m core.build_course_model --architecture llama  # Llama design -> models/glassbox-stories-llama/

Steps, all seeded: write the story corpus (train and validation from different seeds),
train a byte-level BPE tokenizer on the training stories (the Llama-design model reuses the
GPT-2-design model's tokenizer, so the two see the same tokens and can be compared token for
token), train the model with the course's own `Trainer`, and save a Hugging Face model folder.
Each design has its recipe (`RECIPES`; every flag below overrides one part of it). A copying
warm-up (`--copy-warmup N`) trains N steps on windows of the stories mixed half and half with runs
of random story tokens, each followed by its repeat (`core.induction.repeat_documents`): text that
rewards copying at any distance. In 16-token windows a copying circuit forms within about 2,000
steps, where full 128-token windows of stories grew none in 2,500 (nor in 4,500 with the Llama
recipe's repeats and no warm-up: best score 0.12, a control build not kept).
The Llama design: 2,000 warm-up steps in 16-token windows, then 2,500 steps of stories with a
share of repeats (`--repeat-share 0.3`); its rotary positions are relative, so heads that learned
to look one token back in 16-token windows do the same at every position of 128.
The GPT-2 design: its learned positions learn to copy only as far back as its windows reach, so its
warm-up windows grow (`--grow-window 1500,6000`: 16 tokens until step 1,500, the whole context by
step 6,000, with runs of 8 to 60 tokens beside the short ones, half of them stretches of the
stories and their repeats: `--story-spans`), for 8,000 steps and no main training after them
(`--steps 0`); its circuit forms between steps 3,600 and 5,000 (best induction score at most 0.03
through step 3,600, 0.44 at 4,400, 0.78 at 5,000). Without the stories' stretches it
formed too, but copied only random runs, not a student's repeated sentence.
Then run `python -m core.evaluate_course_model [--model FOLDER]` to measure it and write its card.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import NamedTuple

import torch

from core.corpus import END_OF_TEXT, generate_stories
from core.induction import repeat_documents, repeated_spans, test_token_pool, training_progress
from core.tokenization import encode_corpus, train_byte_level_bpe
from core.models import parameter_count
from core.training import Trainer, TrainConfig

MODEL_DIR = Path(__file__).resolve().parent.parent / "models" / "glassbox-stories"
MODERN_MODEL_DIR = MODEL_DIR.parent / "glassbox-stories-llama"
TRAIN_STORIES, TRAIN_SEED = 40_000, 1
VAL_STORIES, VAL_SEED = 1_000, 2
VOCAB_SIZE = 2048  # an upper bound: the corpus's merges run out below it
COURSE_CONFIG = TrainConfig(n_layer=4, n_head=4, n_embd=128, block_size=128, batch_size=32,
                            learning_rate=3e-3, warmup_steps=100, max_steps=2500, seed=0)
# The modern design at about the same size: 4 layers, width 128, 4 query heads sharing 2 key/value heads
MODERN_CONFIG = TrainConfig(n_layer=4, n_head=4, n_embd=128, block_size=128, batch_size=32,
                            learning_rate=3e-3, warmup_steps=100, max_steps=2500, seed=0,
                            architecture="llama", n_kv_head=2)
THREADS = 2
REPEAT_SEED = 4  # the random runs of `--repeat-share` (the copying warm-up's: REPEAT_SEED + 1)
COPY_WINDOW = 16  # tokens per example in the copying warm-up: runs of 2 to 7 tokens and their repeats
LONG_RUNS = (8, 60)  # with a growing window (`--grow-window`), the warm-up also has runs of 8 to 60 tokens


class Recipe(NamedTuple):
    """How a design is trained: a copying warm-up (stories mixed with repeated random runs), then the
    main training on stories with a share of repeats."""
    copy_warmup_steps: int
    main_steps: int
    repeat_share: float  # repeated random runs, as a share of the main training's tokens
    grow_window: tuple[int, int] | None  # the warm-up's windows grow to the whole context between these steps
    story_spans: bool = False  # with grow_window: half of the long runs are stretches of the stories, repeated


# The GPT-2 design grows its induction circuit only when the warm-up's windows grow (16 tokens for
# 1,500 steps, the whole context by step 6,000), and copies ordinary text, not only random runs,
# when stretches of the stories are repeated too; the Llama design grows one from 16-token windows.
RECIPES = {"gpt2": Recipe(copy_warmup_steps=8000, main_steps=0, repeat_share=0.0, grow_window=(1500, 6000),
                          story_spans=True),
           "llama": Recipe(copy_warmup_steps=2000, main_steps=2500, repeat_share=0.3, grow_window=None)}


def warmup_window(step: int, grow_window: tuple[int, int] | None, block_size: int) -> int:
    """Tokens per example at this step of the copying warm-up: COPY_WINDOW, or with `grow_window`
    (first, last) COPY_WINDOW until step `first`, then growing evenly to the whole context by step
    `last`, so that the copying learned on short distances is asked for at longer ones as it forms."""
    if grow_window is None:
        return COPY_WINDOW
    first, last = grow_window
    share = min(1.0, max(0.0, (step - first) / max(1, last - first)))
    return int(COPY_WINDOW + (block_size - COPY_WINDOW) * share)


def short_runs(window: int) -> tuple[int, int]:
    """The copying warm-up's short runs, shortest and longest: from 2 tokens to as many as fit in a
    window of `window` tokens twice, after an end-of-text token (2 to 7 in 16)."""
    return 2, (window - 1) // 2


def warmup_runs(story_ids: torch.Tensor, pool: list[int], eos: int, long_runs: bool, story_spans: bool) -> list[torch.Tensor]:
    """The copying warm-up's runs and their repeats, as many tokens as the stories: runs of 2 to 7
    tokens; with `long_runs` (a growing window) half of them runs of LONG_RUNS tokens instead, of
    which, with `story_spans`, half are stretches of the stories rather than random tokens."""
    story_tokens = len(story_ids)
    short = repeat_documents(pool, story_tokens // 2 if long_runs else story_tokens, eos, REPEAT_SEED + 1,
                             *short_runs(COPY_WINDOW))
    if not long_runs:
        return [short]
    if not story_spans:
        return [short, repeat_documents(pool, story_tokens // 2, eos, REPEAT_SEED + 2, *LONG_RUNS)]
    return [short, repeat_documents(pool, story_tokens // 4, eos, REPEAT_SEED + 2, *LONG_RUNS),
            repeated_spans(story_ids, story_tokens // 4, eos, REPEAT_SEED + 3, *LONG_RUNS)]


def build(out_dir: Path, config: TrainConfig, log_every: int = 100, tokenizer_from: Path | None = None,
          threads: int = THREADS, repeat_share: float = 0.0, copy_warmup_steps: int = 0,
          grow_window: tuple[int, int] | None = None, story_spans: bool = False) -> dict:
    torch.set_num_threads(threads)
    torch.manual_seed(config.seed)
    began = time.perf_counter()
    train_texts = [story.text for story in generate_stories(TRAIN_STORIES, TRAIN_SEED)]
    val_texts = [story.text for story in generate_stories(VAL_STORIES, VAL_SEED)]
    if tokenizer_from is not None:
        from core.hf import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(tokenizer_from)
    else:
        tokenizer = train_byte_level_bpe(train_texts, VOCAB_SIZE)
    train_ids = encode_corpus(tokenizer, train_texts)  # [n_train_tokens]
    val_ids = encode_corpus(tokenizer, val_texts)  # [n_val_tokens]
    eos = tokenizer.convert_tokens_to_ids(END_OF_TEXT)
    story_tokens = len(train_ids)
    seen = sorted(set(train_ids.tolist()))  # the tokens the stories use: the repeats draw from them only
    pool = test_token_pool(tokenizer, seen)  # the story tokens, no special token: the runs and the test draw from it
    repeat_ids = repeat_documents(pool, int(repeat_share / (1 - repeat_share) * story_tokens), eos,
                                  REPEAT_SEED)  # [n_repeat_tokens]: a share repeat_share of all
    warmup_ids = (torch.cat([train_ids] + warmup_runs(train_ids, pool, eos, grow_window is not None, story_spans))
                  if copy_warmup_steps else None)  # [n_warmup_tokens]: the stories, then as many tokens of runs
    train_ids = torch.cat([train_ids, repeat_ids])  # [n_train_tokens]: windows are drawn anywhere, so they mix
    print(f"corpus: {len(train_texts)} train stories, {story_tokens:,} tokens, {len(repeat_ids):,} repeat tokens; "
          f"vocabulary {len(tokenizer)}; {time.perf_counter() - began:.1f} s", flush=True)

    config = replace(config, max_steps=copy_warmup_steps + config.max_steps)  # the schedule spans both phases
    trainer = Trainer(config, train_ids, val_ids, vocab_size=len(tokenizer), eos_token_id=eos)
    history = []
    for step in range(config.max_steps):
        result = (trainer.step(text=warmup_ids, window=warmup_window(step, grow_window, config.block_size))
                  if step < copy_warmup_steps else trainer.step())
        if result.step % log_every == 0 or result.step == config.max_steps:
            val_loss = trainer.validation_loss()
            copying = training_progress(trainer.model, pool, eos)  # the card's standard test, at this step
            history.append({"step": result.step, "train_loss": round(result.loss, 4),
                            "val_loss": round(val_loss, 4), "learning_rate": result.learning_rate} | copying)
            print(f"step {result.step:5d}  train {result.loss:.3f}  val {val_loss:.3f}  "
                  f"induction {copying['induction_score']:.2f}  lr {result.learning_rate:.2e}  "
                  f"{time.perf_counter() - began:.0f} s", flush=True)
    wall_seconds = time.perf_counter() - began

    out_dir.mkdir(parents=True, exist_ok=True)
    trainer.model.eval()
    trainer.model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    record = {
        "command": f"python -m core.build_course_model --architecture {config.architecture}"
                   f" --steps {config.max_steps - copy_warmup_steps} --copy-warmup {copy_warmup_steps}"
                   f" --repeat-share {repeat_share}"
                   + (f" --grow-window {grow_window[0]},{grow_window[1]}" if grow_window else "")
                   + (" --story-spans" if story_spans else "")
                   + (f" --threads {threads}" if threads != THREADS else ""),
        "config": asdict(config),
        "corpus": {"train_stories": TRAIN_STORIES, "train_seed": TRAIN_SEED, "val_stories": VAL_STORIES,
                   "val_seed": VAL_SEED, "train_tokens": story_tokens, "val_tokens": len(val_ids),
                   "repeat_tokens": len(repeat_ids), "repeat_seed": REPEAT_SEED,
                   "copy_warmup_steps": copy_warmup_steps, "copy_warmup_window": COPY_WINDOW}
                  | ({"copy_warmup_window_growth": list(grow_window), "copy_warmup_long_runs": list(LONG_RUNS)}
                     if grow_window else {})
                  | ({"copy_warmup_story_spans": True} if story_spans else {}),
        "vocab_size": len(tokenizer),
        "seen_token_ids": seen,  # the tokens the model ever saw as input (lesson 2)
        "parameters": parameter_count(trainer.model),
        "torch_threads": threads,
        "wall_seconds": round(wall_seconds, 1),
        "history": history,
    }
    (out_dir / "training.json").write_text(json.dumps(record, indent=1))
    print(f"saved to {out_dir} in {wall_seconds:.0f} s", flush=True)
    return record


def record_seen_tokens(out_dir: Path) -> list[int]:
    """Add `seen_token_ids` to a built model's training.json: the tokens of its training text (the
    same stories, regenerated from their seed), without training again."""
    from core.hf import AutoTokenizer

    record = json.loads((out_dir / "training.json").read_text())
    corpus = record["corpus"]
    texts = [story.text for story in generate_stories(corpus["train_stories"], corpus["train_seed"])]
    seen = sorted(set(encode_corpus(AutoTokenizer.from_pretrained(out_dir), texts).tolist()))
    record["seen_token_ids"] = seen
    (out_dir / "training.json").write_text(json.dumps(record, indent=1))
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--architecture", choices=("gpt2", "llama"), default="gpt2")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--steps", type=int, default=None,
                        help="main training steps after the warm-up (default: the design's recipe, RECIPES)")
    parser.add_argument("--threads", type=int, default=THREADS,
                        help="torch threads (the float sums, and so the weights, depend on it)")
    parser.add_argument("--repeat-share", type=float, default=None,
                        help="repeated random runs, as a share of the training tokens (default: the design's "
                             "recipe, RECIPES)")
    parser.add_argument("--copy-warmup", type=int, default=None,
                        help="steps of windows of stories and repeated runs before the main training "
                             "(default: the design's recipe, RECIPES)")
    parser.add_argument("--grow-window", default=None, metavar="FIRST,LAST",
                        help="grow the warm-up's windows from 16 tokens at step FIRST to the whole context at "
                             "step LAST, with runs of 8-60 tokens beside the short ones; 'none' keeps them at 16 "
                             "(default: the design's recipe, RECIPES)")
    parser.add_argument("--story-spans", action=argparse.BooleanOptionalAction, default=None,
                        help="with --grow-window, half of the long runs are stretches of the stories and their "
                             "repeats instead of random tokens (default: the design's recipe, RECIPES)")
    parser.add_argument("--record-seen-tokens", action="store_true",
                        help="only add the training text's token ids to an existing model's training.json")
    args = parser.parse_args()
    if args.record_seen_tokens:
        record_seen_tokens(args.out or (MODERN_MODEL_DIR if args.architecture == "llama" else MODEL_DIR))
        return
    recipe = RECIPES[args.architecture]
    base = MODERN_CONFIG if args.architecture == "llama" else COURSE_CONFIG
    config = replace(base, max_steps=recipe.main_steps if args.steps is None else args.steps)
    out = args.out or (MODERN_MODEL_DIR if args.architecture == "llama" else MODEL_DIR)
    if args.grow_window is None:
        grow_window = recipe.grow_window
    else:
        grow_window = None if args.grow_window == "none" else tuple(int(step) for step in args.grow_window.split(","))
    build(out, config, tokenizer_from=MODEL_DIR if args.architecture == "llama" else None, threads=args.threads,
          repeat_share=recipe.repeat_share if args.repeat_share is None else args.repeat_share,
          copy_warmup_steps=recipe.copy_warmup_steps if args.copy_warmup is None else args.copy_warmup,
          grow_window=grow_window, story_spans=recipe.story_spans if args.story_spans is None else args.story_spans)


if __name__ == "__main__":
    main()
