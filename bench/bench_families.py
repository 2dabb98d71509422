"""Benchmarks of the glass box on every family: `python bench/bench_families.py`. Prints figures;
asserts nothing.

- the trace's time over the Hugging Face forward (eager attention), at 21 and 128 tokens, for a
  tiny random model of each family (saved to a temporary folder with the course tokenizer) and
  for both course models (goal, issue 14: ≤ 1.3)
- every lesson's rerun median on the Llama-design course model (AppTest, warm caches; goal ≤ 300 ms)
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from transformers.utils import logging as transformers_logging  # noqa: E402

from bench.bench_app import PAGES, RERUNS, median_seconds, page_rerun  # noqa: E402
from core.architectures import weights_of  # noqa: E402
from core.glassbox import run_trace  # noqa: E402
from core.models import load_model  # noqa: E402
from tests.test_families_app import FAMILY_VARIANTS  # noqa: E402
from tests.tiny_models import tiny_model  # noqa: E402

STORY = ("Once upon a time, there was a girl named Mia. Mia had a red ball. One day, Mia went to the park "
         "with her ball. At the park, she saw a dog. The dog wanted to play. ") * 6


def ratio(model, ids: list[int]) -> tuple[float, float]:
    with torch.no_grad():
        model(input_ids=torch.tensor([ids]))  # warm up
    run_trace(model, ids)
    with torch.no_grad():
        forward = median_seconds(lambda: model(input_ids=torch.tensor([ids])), 30)
    trace = median_seconds(lambda: run_trace(model, ids), 30)
    return trace, forward


def main() -> None:
    from streamlit.logger import set_log_level

    set_log_level("error")
    transformers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    torch.set_num_threads(2)
    course = load_model("glassbox-stories")
    tokenizer = course.tokenizer
    story_ids = tokenizer(STORY)["input_ids"]
    with tempfile.TemporaryDirectory() as folder:
        models = {}
        for variant in FAMILY_VARIANTS:
            path = Path(folder) / variant
            tiny_model(variant, vocab_size=len(tokenizer)).save_pretrained(path)
            tokenizer.save_pretrained(path)
            models[f"tiny {variant}"] = load_model(str(path)).model
        models["course, GPT-2 design"] = course.model
        models["course, Llama design"] = load_model("glassbox-stories-llama").model
        print("== trace / Hugging Face forward (eager), median of 30 ==")
        for label, model in models.items():
            cells = []
            for n in (21, 128):
                ids = story_ids[:min(n, weights_of(model).arch.n_ctx)]  # the tiny models' context is 32
                trace, forward = ratio(model, ids)
                cells.append(f"{len(ids):3d} tok: trace {trace * 1000:6.2f} ms, HF {forward * 1000:6.2f} ms, "
                             f"ratio {trace / forward:4.2f}")
            print(f"{label:30s} " + " | ".join(cells))
    print(f"== page rerun on the Llama-design course model, median of {RERUNS} (default | 128-token prompt) ==")
    long_prompt = tokenizer.decode(story_ids[:128])
    for page in PAGES:
        print(f"{page:32s} {page_rerun(page, 'glassbox-stories-llama') * 1000:7.1f} ms | "
              f"{page_rerun(page, 'glassbox-stories-llama', long_prompt) * 1000:7.1f} ms")


if __name__ == "__main__":
    main()
