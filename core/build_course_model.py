"""Rebuild the bundled course model from nothing: `python -m core.build_course_model`.

Steps, all seeded: write the story corpus (train and validation from different seeds),
train a byte-level BPE tokenizer on the training stories, train a small GPT-2 with the
course's own `Trainer`, and save a Hugging Face model folder to `models/glassbox-stories/`.
Then run `python -m core.evaluate_course_model` to measure it and write its model card.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import torch

from core.corpus import END_OF_TEXT, generate_stories
from core.tokenization import encode_corpus, train_byte_level_bpe
from core.training import Trainer, TrainConfig, parameter_count

MODEL_DIR = Path(__file__).resolve().parent.parent / "models" / "glassbox-stories"
TRAIN_STORIES, TRAIN_SEED = 40_000, 1
VAL_STORIES, VAL_SEED = 1_000, 2
VOCAB_SIZE = 2048  # an upper bound: the corpus's merges run out below it
COURSE_CONFIG = TrainConfig(n_layer=4, n_head=4, n_embd=128, block_size=128, batch_size=32,
                            learning_rate=3e-3, warmup_steps=100, max_steps=2500, seed=0)
THREADS = 2


def build(out_dir: Path, config: TrainConfig, log_every: int = 100) -> dict:
    torch.set_num_threads(THREADS)
    torch.manual_seed(config.seed)
    began = time.perf_counter()
    train_texts = [story.text for story in generate_stories(TRAIN_STORIES, TRAIN_SEED)]
    val_texts = [story.text for story in generate_stories(VAL_STORIES, VAL_SEED)]
    tokenizer = train_byte_level_bpe(train_texts, VOCAB_SIZE)
    train_ids = encode_corpus(tokenizer, train_texts)  # [n_train_tokens]
    val_ids = encode_corpus(tokenizer, val_texts)  # [n_val_tokens]
    print(f"corpus: {len(train_texts)} train stories, {len(train_ids):,} tokens; "
          f"vocabulary {len(tokenizer)}; {time.perf_counter() - began:.1f} s", flush=True)

    eos = tokenizer.convert_tokens_to_ids(END_OF_TEXT)
    trainer = Trainer(config, train_ids, val_ids, vocab_size=len(tokenizer), eos_token_id=eos)
    history = []
    for _ in range(config.max_steps):
        result = trainer.step()
        if result.step % log_every == 0 or result.step == config.max_steps:
            val_loss = trainer.validation_loss()
            history.append({"step": result.step, "train_loss": round(result.loss, 4),
                            "val_loss": round(val_loss, 4), "learning_rate": result.learning_rate})
            print(f"step {result.step:5d}  train {result.loss:.3f}  val {val_loss:.3f}  "
                  f"lr {result.learning_rate:.2e}  {time.perf_counter() - began:.0f} s", flush=True)
    wall_seconds = time.perf_counter() - began

    out_dir.mkdir(parents=True, exist_ok=True)
    trainer.model.eval()
    trainer.model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    record = {
        "command": "python -m core.build_course_model",
        "config": asdict(config),
        "corpus": {"train_stories": TRAIN_STORIES, "train_seed": TRAIN_SEED, "val_stories": VAL_STORIES,
                   "val_seed": VAL_SEED, "train_tokens": len(train_ids), "val_tokens": len(val_ids)},
        "vocab_size": len(tokenizer),
        "parameters": parameter_count(trainer.model),
        "torch_threads": THREADS,
        "wall_seconds": round(wall_seconds, 1),
        "history": history,
    }
    (out_dir / "training.json").write_text(json.dumps(record, indent=1))
    print(f"saved to {out_dir} in {wall_seconds:.0f} s", flush=True)
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=MODEL_DIR)
    parser.add_argument("--steps", type=int, default=COURSE_CONFIG.max_steps)
    args = parser.parse_args()
    config = TrainConfig(**{**asdict(COURSE_CONFIG), "max_steps": args.steps})
    build(args.out, config)


if __name__ == "__main__":
    main()
