"""Induction: continuing a text that repeats, by finding the earlier copy of the current token
and reading what came after it.

The standard test (Olsson et al., 2022; in the form of the TransformerLens / ARENA tutorials): a run
of random tokens, then the same run again. Nothing in the first half can be predicted from what came
before, so its loss stays near a guess; a model with an induction circuit predicts the second
half from the first and its loss there falls. The circuit is two heads in two layers: a
previous-token head writes "the token before me was A" into each position, and an induction
head in a later layer, at a new A, attends to the position whose previous token was A (the
token just after the earlier A) and copies it. `core.attention.head_scores` measures both on
any prompt; this file makes the test prompts and the training text that rewards copying.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from core.attention import head_scores
from core.glassbox import NO_INTERVENTIONS, Interventions, run_trace

TEST_LENGTH, TEST_SEQUENCES, TEST_SEED = 50, 10, 0
# what counts as a circuit: the best head puts at least this share of its attention on the token
# after the earlier copy, and the loss on the repeat is under this share of the first half's
FOUND_SCORE, FOUND_LOSS_RATIO = 0.4, 0.5


def repeated_random_tokens(pool: list[int], length: int, generator: torch.Generator) -> list[int]:
    """`length` tokens drawn from `pool` (with replacement), then the same tokens again: [2 × length]."""
    picks = torch.randint(0, len(pool), (length,), generator=generator)  # [length]
    run = [pool[i] for i in picks.tolist()]
    return run + run


def _repeated_documents(n_tokens: int, eos_token_id: int, seed: int, shortest: int, longest: int,
                        run_and_repeat) -> torch.Tensor:
    """Documents of an end-of-text token, then `run_and_repeat(length, generator)` (a run of a
    random length and the same run again), about `n_tokens` in all: [n_ids]."""
    generator = torch.Generator().manual_seed(seed)
    ids: list[int] = []
    while len(ids) < n_tokens:
        length = int(torch.randint(shortest, longest + 1, (1,), generator=generator))
        ids += [eos_token_id] + run_and_repeat(length, generator)
    return torch.tensor(ids, dtype=torch.long)  # [n_ids]


def repeat_documents(pool: list[int], n_tokens: int, eos_token_id: int, seed: int,
                     shortest: int = 8, longest: int = 60) -> torch.Tensor:
    """Training text that rewards copying at any distance: documents of a random run of `pool`
    tokens and its repeat, each after an end-of-text token, about `n_tokens` in all: [n_ids]."""
    return _repeated_documents(n_tokens, eos_token_id, seed, shortest, longest,
                               lambda length, generator: repeated_random_tokens(pool, length, generator))


def repeated_spans(text_ids: torch.Tensor, n_tokens: int, eos_token_id: int, seed: int,
                   shortest: int = 8, longest: int = 60) -> torch.Tensor:
    """Training text that rewards copying ordinary text: documents of a span of `text_ids` (a
    stretch of the stories, where any starts) and its repeat, each after an end-of-text token,
    about `n_tokens` in all: [n_ids]."""
    def span_and_repeat(length: int, generator: torch.Generator) -> list[int]:
        start = int(torch.randint(len(text_ids) - length, (1,), generator=generator))
        span = text_ids[start:start + length].tolist()  # [length]
        return span + span

    return _repeated_documents(n_tokens, eos_token_id, seed, shortest, longest, span_and_repeat)


@dataclass(frozen=True)
class InductionTest:
    scores: torch.Tensor  # [layer, head] mean attention to the token after the earlier copy
    previous_token: torch.Tensor  # [layer, head] mean attention to the token just before
    first_half_loss: float  # nats per token on the random run (tokens 2..L: the first cannot be guessed)
    repeat_loss: float  # nats per token on its repeat (tokens L+2..2L: the repeat's first cannot be copied)

    def best_head(self, scores: torch.Tensor | None = None) -> tuple[int, int, float]:
        table = self.scores if scores is None else scores
        layer, head = divmod(int(table.argmax()), table.shape[1])
        return layer, head, float(table[layer, head])


def token_losses(logits: torch.Tensor, token_ids: list[int]) -> torch.Tensor:
    """The loss of predicting each next token: [pos - 1] from logits [pos, vocab]."""
    return F.cross_entropy(logits[:-1], torch.tensor(token_ids[1:], dtype=torch.long), reduction="none")  # [pos - 1]


def induction_test(model, pool: list[int], eos_token_id: int, interventions: Interventions = NO_INTERVENTIONS,
                   length: int = TEST_LENGTH, sequences: int = TEST_SEQUENCES, seed: int = TEST_SEED) -> InductionTest:
    """The standard test on `sequences` prompts of an end-of-text token, `length` random tokens
    from `pool` and their repeat (the same prompts for the same seed); shorter runs where the
    model's context is too short for them."""
    from core.architectures import weights_of

    length = max(1, min(length, (weights_of(model).arch.n_ctx - 1) // 2))
    generator = torch.Generator().manual_seed(seed)
    scores, previous, first_half, repeat = [], [], [], []
    for _ in range(sequences):
        ids = [eos_token_id] + repeated_random_tokens(pool, length, generator)  # [1 + 2 × length]
        trace = run_trace(model, ids, interventions=interventions)
        by_role = head_scores(trace)
        scores.append(by_role["induction"])
        previous.append(by_role["previous-token"])
        losses = token_losses(trace["logits"], ids)  # loss i predicts token i + 1  # [2 × length]
        first_half.append(losses[1:length].mean())  # tokens 2..L of the run
        repeat.append(losses[length + 1:].mean())  # the repeat but its first token, which follows the run's last
    return InductionTest(torch.stack(scores).mean(dim=0), torch.stack(previous).mean(dim=0),
                         float(torch.stack(first_half).mean()), float(torch.stack(repeat).mean()))


def training_progress(model, pool: list[int], eos_token_id: int) -> dict[str, float]:
    """The standard test at one step of a build (what lesson 4's growth figure draws): the best
    induction score from layer 1 on (layer 0 has no earlier layer to compose with), and the loss
    on the repeat as a share of the first half's (1: no copying; 0: perfect copying)."""
    test = induction_test(model, pool, eos_token_id)
    circuit = find_circuit(test)
    best = circuit.induction_score if circuit is not None else 0.0
    return {"induction_score": round(best, 4), "repeat_loss_ratio": round(test.repeat_loss / test.first_half_loss, 4)}


@dataclass(frozen=True)
class WarmupRecord:
    """A course model's copying warm-up as its build record says it was (the `corpus` fields that
    core.build_course_model writes, read here and nowhere else): its steps (0: none), its examples'
    window at first, and the steps over which the windows grew to the whole context, if they did."""

    steps: int
    window: int
    growth: tuple[int, int] | None

    @classmethod
    def of(cls, corpus: dict) -> WarmupRecord:
        growth = corpus.get("copy_warmup_window_growth")
        return cls(corpus.get("copy_warmup_steps", 0), corpus.get("copy_warmup_window", 0),
                   tuple(growth) if growth else None)


def warmup_phases(corpus: dict, block_size: int) -> list[tuple[int, int, str]]:
    """The copying warm-up's phases as a build recorded them (first step, last step, what the
    examples were), for the growth figure's shaded bands: one phase of short windows, or, where the
    windows grew, the short ones and then the growing ones."""
    warmup = WarmupRecord.of(corpus)
    if not warmup.steps:
        return []
    if not warmup.growth:
        return [(0, warmup.steps, f"copying warm-up: {warmup.window}-token examples")]
    first, last = warmup.growth
    return [(0, first, f"{warmup.window}-token examples"),
            (first, min(last, warmup.steps), f"examples grow to {block_size} tokens")]


@dataclass(frozen=True)
class InductionCircuit:
    """The two heads of a model's induction circuit, found by the standard test: the head with the
    highest induction score (in layer 1 or later: it needs an earlier layer to read from), and the
    head with the highest previous-token score in an earlier layer."""

    induction_head: tuple[int, int]
    induction_score: float
    previous_token_head: tuple[int, int]
    previous_token_score: float
    test: InductionTest

    @property
    def found(self) -> bool:
        return is_circuit(self.induction_score, self.test.first_half_loss, self.test.repeat_loss)


def is_circuit(induction_score: float, first_half_loss: float, repeat_loss: float) -> bool:
    """Whether the model copies: a strong induction head and a repeat it predicts far better."""
    return induction_score >= FOUND_SCORE and repeat_loss < FOUND_LOSS_RATIO * first_half_loss


def induction_heads(test: InductionTest, at_least: float = FOUND_SCORE) -> list[tuple[float, int, int]]:
    """(score, layer, head) of every head from layer 1 on scoring at least `at_least`, best first."""
    later_layers = test.scores[1:]  # [layer - 1, head]: layer 0 has no earlier layer to compose with
    return sorted(((float(later_layers[layer, head]), layer + 1, head)
                   for layer, head in (later_layers >= at_least).nonzero().tolist()), reverse=True)


def find_circuit(test: InductionTest) -> InductionCircuit | None:
    """None for a one-layer model: a single layer cannot compose two heads."""
    if test.scores.shape[0] < 2:
        return None
    layer, head, score = test.best_head(test.scores[1:])
    layer += 1  # the search started at layer 1
    prev_layer, prev_head, prev_score = test.best_head(test.previous_token[:layer])
    return InductionCircuit((layer, head), score, (prev_layer, prev_head), prev_score, test)


def standard_test(model, tokenizer, seen_token_ids: list[int] | None,
                  interventions: Interventions = NO_INTERVENTIONS) -> InductionTest:
    """`induction_test` on the model's own tokens (`test_token_pool`), each prompt opened by its
    end-of-text token (or, for a tokenizer without one, the pool's first token)."""
    pool = test_token_pool(tokenizer, seen_token_ids)
    eos = tokenizer.eos_token_id
    return induction_test(model, pool, eos if eos is not None else pool[0], interventions)


def test_token_pool(tokenizer, seen_token_ids: list[int] | None) -> list[int]:
    """Tokens for the random runs: the ones the model saw in training when that is known (a token
    never seen as input says nothing about copying), else the whole vocabulary; never a special token."""
    special = set(tokenizer.all_special_ids)
    pool = seen_token_ids if seen_token_ids is not None else range(len(tokenizer))
    return [i for i in pool if i not in special]


def copyable_positions(token_ids: list[int]) -> list[int]:
    """Positions whose next token can be copied: the current token appeared earlier and the token
    after that earlier copy is the right next token here (the second half of a repeated text)."""
    return [q for q in range(1, len(token_ids) - 1)
            if any(token_ids[j] == token_ids[q] and token_ids[j + 1] == token_ids[q + 1] for j in range(q))]


def repeated_prompt(prompt: str) -> str:
    """The prompt twice, so that everything after the first copy can be copied."""
    return f"{prompt.rstrip()} {prompt.strip()}"
