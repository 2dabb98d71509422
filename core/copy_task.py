"""The copy task of lesson 7: lines of six words written twice, whose second half can only be
predicted by copying the first, and the copy test that scores a model on new lines (how many
copied tokens it predicts, and which head looks back at the earlier copy)."""
from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from core.architectures import weights_of
from core.glassbox import run_trace

COPY_WORDS = ("ant ape arm bag bat bed bee box bus cap car cat cow cup dog ear egg elf emu eye fan fig fox gem "
              "hat hen ice ink jam jar jet key kit leg lip log map mat mud net nut oak owl pan pen pig pot "
              "ram rat rug sea sky sun tea toy tub van web wig yak zip").split()
COPY_LINE_WORDS = 6
COPY_SEPARATOR = " |"


def copy_line(words: list[str]) -> str:
    return " ".join(words) + COPY_SEPARATOR + " " + " ".join(words)


def copy_task_documents(count: int = 4000, seed: int = 0) -> list[str]:
    """Lines of six different three-letter words written twice: "cat sun owl map jet fig | cat sun
    owl map jet fig". The second half can only be predicted by copying the first. Every line has
    the same length (in characters, and in tokens for a BPE that holds each word as one token), and
    training examples begin at a line's start, so the earlier copy of the next word is always the
    same number of tokens back: one attention head learns to look exactly there."""
    rng = random.Random(seed)
    return [copy_line(rng.sample(COPY_WORDS, COPY_LINE_WORDS)) for _ in range(count)]


def copy_test_lines(count: int = 20) -> list[str]:
    """New copy-task lines (another seed than the training lines') for scoring a model."""
    return copy_task_documents(count, seed=1)


def copy_distance(ids: list[int]) -> int | None:
    """How many tokens back the earlier copy lies in a copy-task line: the smallest d for which
    every token of the second half but its first equals the token d places before it (the first
    word of each half may tokenize differently: "cat" and " cat"). None if the halves differ."""
    for distance in range(len(ids) // 2, len(ids) - 1):
        if ids[distance + 1:] == ids[1:len(ids) - distance]:
            return distance
    return None


@dataclass
class CopyScore:
    """How well a model does the copy task, on new lines."""
    accuracy: float  # share of second-half tokens (all but the first) predicted top-1
    layer: int  # the head that looks back to the earlier copy the most
    head: int
    attention: float  # that head's mean attention on the earlier copy of the token to predict
    predictions: int  # how many predictions were scored


def copy_task_score(model, tokenizer, lines: list[str]) -> CopyScore | None:
    """Each line on its own (it starts at position 0, as in training): from every second-half
    position whose next token has an earlier copy, is the next token predicted, and how much
    attention does each head put on that earlier copy? None if no line splits into two copies
    under this tokenizer."""
    correct = total = 0
    attention_sum = None  # [layer, head]
    for line in lines:
        ids = tokenizer(line)["input_ids"][: weights_of(model).arch.n_ctx]
        distance = copy_distance(ids)
        if distance is None:
            continue
        trace = run_trace(model, ids)
        queries = torch.arange(distance, len(ids) - 1)  # [n_queries] positions predicting a copied token
        sources = queries + 1 - distance  # [n_queries] where that token stood in the first half
        targets = torch.tensor(ids)[queries + 1]  # [n_queries]
        correct += int((trace["logits"][queries].argmax(-1) == targets).sum())
        total += len(queries)
        patterns = torch.stack([trace[f"blocks.{layer}.attn.pattern"] for layer in range(trace.n_layer)])  # [layer, head, query, key]
        on_copy = patterns[:, :, queries, sources].sum(-1)  # [layer, head]
        attention_sum = on_copy if attention_sum is None else attention_sum + on_copy
    if not total:
        return None
    mean_attention = attention_sum / total  # [layer, head]
    layer, head = divmod(int(mean_attention.argmax()), mean_attention.shape[1])
    return CopyScore(correct / total, layer, head, float(mean_attention[layer, head]), total)
