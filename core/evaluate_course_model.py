"""Measure the bundled course model and write its model card: `python -m core.evaluate_course_model`.

Everything is measured on stories the model never saw (a generator seed used neither for
training nor for validation). The probes come from the generator itself, which knows, for
every story, where a name, pronoun or object is fixed by what came before.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import torch

from core.corpus import generate_stories
from core.glassbox import Interventions, run_trace
from core.induction import (FOUND_LOSS_RATIO, FOUND_SCORE, TEST_LENGTH, TEST_SEQUENCES, WarmupRecord, find_circuit,
                            induction_heads, is_circuit, standard_test)
from core.models import load_local_model
from core.build_course_model import MODEL_DIR, short_runs, warmup_window

EVAL_STORIES, EVAL_SEED = 500, 3
MAT_PROMPT = "The cat sat on the"


@dataclass
class ProbeResult:
    kind: str
    correct: bool  # top-1 for name/object/mat; right pronoun more likely than wrong for pronouns
    answer_probability: float


def first_token_id(tokenizer, text: str) -> int:
    return tokenizer(text, add_special_tokens=False)["input_ids"][0]


def story_probe_positions(tokenizer, story) -> tuple[list[int], list[tuple[int, int, str]]]:
    """A story's token ids, and (prediction position, answer token, kind) per probe: no model needed."""
    encoding = tokenizer(story.text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = encoding["input_ids"], encoding["offset_mapping"]
    start_to_index = {start: index for index, (start, _) in enumerate(offsets)}
    positions = []
    for probe in story.probes:
        index = start_to_index.get(probe.start)
        if index is None or index == 0:
            raise ValueError(f"probe at {probe.start} does not start a token in {story.text!r}")
        positions.append((index - 1, ids[index], probe.kind))
    return ids, positions


def story_probe_results(model, tokenizer, story) -> tuple[list[ProbeResult], list[tuple[int, int, str]]]:
    """Probe results for one story, and (prediction position, answer token, kind) per probe."""
    ids, positions = story_probe_positions(tokenizer, story)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0]  # [pos, vocab]
    probs = torch.softmax(logits, dim=-1)  # [pos, vocab]
    results = []
    for probe, (query, answer, _) in zip(story.probes, positions):
        row = probs[query]  # the prediction made at the token before the answer  # [vocab]
        if probe.kind == "pronoun":
            correct = row[answer] > row[first_token_id(tokenizer, probe.wrong)]
        else:
            correct = int(row.argmax()) == answer
        results.append(ProbeResult(probe.kind, bool(correct), float(row[answer])))
    return results, positions


def name_mover_scores(model, tokenizer, stories) -> torch.Tensor:
    """For every head, the mean attention paid, at the token before a repeated name, to the
    earlier occurrences of that name: [layer, head]. A high score marks a head that looks
    back at the name when the model is about to say it again."""
    from core.architectures import weights_of

    arch = weights_of(model).arch
    total = torch.zeros(arch.n_layer, arch.n_head)  # [layer, head]
    count = 0
    for story in stories:
        ids, positions = story_probe_positions(tokenizer, story)  # one forward a story: the trace's
        trace = run_trace(model, ids)
        for query, answer, kind in positions:
            earlier = [key for key in range(query + 1) if ids[key] == answer]
            if kind != "name" or not earlier:
                continue
            for layer in range(trace.n_layer):
                pattern = trace["pattern", layer]  # [head, query, key]
                total[layer] += pattern[:, query, earlier].sum(dim=-1)  # [head]
            count += 1
    return total / max(count, 1)


def name_accuracy(model, tokenizer, stories, interventions: Interventions) -> float:
    """Top-1 accuracy at the repeated-name probes, with the given heads or neurons ablated."""
    hits = total = 0
    for story in stories:
        encoding = tokenizer(story.text, add_special_tokens=False, return_offsets_mapping=True)
        ids = encoding["input_ids"]
        start_to_index = {start: index for index, (start, _) in enumerate(encoding["offset_mapping"])}
        logits = run_trace(model, ids, interventions=interventions)["logits"]  # [pos, vocab]
        for probe in story.probes:
            if probe.kind == "name":
                index = start_to_index[probe.start]
                hits += int(logits[index - 1].argmax()) == ids[index]
                total += 1
    return hits / max(total, 1)


def induction_measurements(model, tokenizer, model_dir: Path) -> dict:
    """The standard induction test (`core.induction`) on the tokens the model saw in training, and
    the loss on the repeat with each head of the circuit ablated."""
    seen = json.loads((model_dir / "training.json").read_text()).get("seen_token_ids")
    test = standard_test(model, tokenizer, seen)
    circuit = find_circuit(test)
    ablated = {f"layer {layer} head {head}": standard_test(
        model, tokenizer, seen, Interventions(ablated_heads=frozenset({(layer, head)}))).repeat_loss
        for layer, head in (circuit.induction_head, circuit.previous_token_head)}
    return {"induction_head": list(circuit.induction_head), "induction_score": circuit.induction_score,
            "induction_heads": [list(found) for found in induction_heads(test)],  # every head at or above FOUND_SCORE
            "previous_token_head": list(circuit.previous_token_head),
            "previous_token_score": circuit.previous_token_score,
            "first_half_loss": test.first_half_loss, "repeat_loss": test.repeat_loss,
            "repeat_loss_with_ablation": ablated}


def evaluate(model_dir: Path) -> dict:
    began = time.perf_counter()
    model, tokenizer = load_local_model(model_dir)
    stories = generate_stories(EVAL_STORIES, EVAL_SEED)
    by_kind: dict[str, list[ProbeResult]] = defaultdict(list)
    for story in stories:
        for result in story_probe_results(model, tokenizer, story)[0]:
            by_kind[result.kind].append(result)

    mat_ids = tokenizer(MAT_PROMPT, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        mat_probs = torch.softmax(model(input_ids=torch.tensor([mat_ids])).logits[0, -1], dim=-1)
    p_mat = float(mat_probs[first_token_id(tokenizer, " mat")])

    scores = name_mover_scores(model, tokenizer, stories[:100])  # [layer, head]
    ranked = sorted(((float(scores[l, h]), l, h) for l in range(scores.shape[0]) for h in range(scores.shape[1])),
                    reverse=True)
    ablation_stories = stories[:200]
    top_two = frozenset((layer, head) for _, layer, head in ranked[:2])
    ablations = {
        "none": name_accuracy(model, tokenizer, ablation_stories, Interventions()),
        f"layer {ranked[0][1]} head {ranked[0][2]}": name_accuracy(
            model, tokenizer, ablation_stories, Interventions(ablated_heads=frozenset({ranked[0][1:]}))),
        " and ".join(f"layer {l} head {h}" for l, h in sorted(top_two)): name_accuracy(
            model, tokenizer, ablation_stories, Interventions(ablated_heads=top_two)),
    }
    probes = {kind: {"cases": len(results), "accuracy": sum(r.correct for r in results) / len(results),
                     "mean_probability": sum(r.answer_probability for r in results) / len(results)}
              for kind, results in sorted(by_kind.items())}
    return {"p_mat": p_mat, "probes": probes, "name_heads": ranked[:3], "name_accuracy_with_ablation": ablations,
            "induction": induction_measurements(model, tokenizer, model_dir),
            "eval_stories": EVAL_STORIES, "eval_seed": EVAL_SEED,
            "seconds": round(time.perf_counter() - began, 1)}


def model_card(training: dict, evaluation: dict) -> str:
    config = training["config"]
    history = training["history"]
    probes = evaluation["probes"]
    rules = {"name": ("name predicted top-1 where the story repeats it", 0.95),
             "pronoun": ("right pronoun (he/she, his/her) more likely than the wrong one", 0.80),
             "object": ("object predicted top-1 after its colour, recalled from earlier", 0.80)}
    rows = [f"| P(\" mat\" \\| \"{MAT_PROMPT}\") | 1 | {evaluation['p_mat']:.3f} | ≥ 0.5 | "
            f"{'pass' if evaluation['p_mat'] >= 0.5 else 'FAIL'} |"]
    for kind, (label, bar) in rules.items():
        found = probes.get(kind)
        if found:
            rows.append(f"| {label} | {found['cases']} | {found['accuracy']:.1%} | ≥ {bar:.0%} | "
                        f"{'pass' if found['accuracy'] >= bar else 'FAIL'} |")
    induction = evaluation.get("induction")
    if induction:
        rows.append(f"| induction score of the best head (attention to the token after the earlier copy) | "
                    f"{TEST_SEQUENCES} | {induction['induction_score']:.2f} | ≥ {FOUND_SCORE:.2f} | "
                    f"{'pass' if induction['induction_score'] >= FOUND_SCORE else 'FAIL'} |")
        ratio = induction["repeat_loss"] / induction["first_half_loss"]
        rows.append(f"| loss on the repeat ÷ loss on the first half | {TEST_SEQUENCES} | {ratio:.2f} | "
                    f"< {FOUND_LOSS_RATIO:.2f} | {'pass' if ratio < FOUND_LOSS_RATIO else 'FAIL'} |")
    heads = "\n".join(f"- layer {layer}, head {head}: {score:.2f} of its attention on the earlier name"
                      for score, layer, head in evaluation["name_heads"])
    best_score, best_layer, best_head = evaluation["name_heads"][0]
    ablation_lines = "\n".join(f"- ablated: {what}: {accuracy:.1%}"
                               for what, accuracy in evaluation["name_accuracy_with_ablation"].items())
    if config.get("architecture", "gpt2") == "llama":
        title = "glassbox-stories-llama"
        design = (f"a {config['n_layer']}-layer model of the Llama design (Hugging Face `LlamaForCausalLM`:\n"
                  f"RMSNorm, rotary positions, a SwiGLU MLP, {config['n_head']} query heads sharing "
                  f"{config['n_kv_head'] or config['n_head']} key/value heads),\nthe modern twin of `glassbox-stories` "
                  "(the same stories, tokenizer and trainer),")
    else:
        title = "glassbox-stories"
        design = f"a {config['n_layer']}-layer GPT-2 (Hugging Face\n`GPT2LMHeadModel`)"
    threads = f"{training['torch_threads']} CPU thread" + ("s" if training["torch_threads"] != 1 else "")
    kv_note = f" ({config['n_kv_head']} key/value heads)" if config.get("n_kv_head") else ""
    tokenizer_note = "\n  (the very file glassbox-stories uses)" if title != "glassbox-stories" else ""
    return f"""# {title}

The course model of Glassbox GPT: {design} trained from scratch on short generated stories. Nothing in it came
from the internet: the stories, the tokenizer and the weights are all made by this
project's code.

## How it was made
- Command: `{training['command']}` (then `python -m core.evaluate_course_model` for this card)
- Corpus: {training['corpus']['train_stories']:,} stories from `core/corpus.py`, seed
  {training['corpus']['train_seed']} ({training['corpus']['train_tokens']:,} tokens); validation
  {training['corpus']['val_stories']:,} stories, seed {training['corpus']['val_seed']}
- Tokenizer: byte-level BPE trained on the training stories, {training['vocab_size']} tokens{tokenizer_note}
- Config: {config['n_layer']} layers, {config['n_head']} heads{kv_note}, width {config['n_embd']},
  context {config['block_size']}, batch {config['batch_size']}, peak learning rate
  {config['learning_rate']}, warm-up {config['warmup_steps']} steps then cosine decay,
  weight decay {config['weight_decay']}, gradient clipping {config['grad_clip']}, seed {config['seed']}
- Steps: {steps_line(config, training['corpus'])}
- Wall time: {training['wall_seconds'] / 60:.1f} min on {threads} (corpus, tokenizer and training together)
- Parameters: {training['parameters']:,}

## Measurements
Validation loss at the end of training: **{history[-1]['val_loss']:.3f}** nats per token
(a uniform guess over the vocabulary would score {math.log(training['vocab_size']):.2f}).

Probes on {evaluation['eval_stories']} held-out stories (generator seed {evaluation['eval_seed']}):

| probe | cases | measured | required | |
|---|---|---|---|---|
{chr(10).join(rows)}

## A head you can watch
When the model is about to repeat a character's name (after `One day,` or `said`),
**layer {best_layer}, head {best_head}** puts {best_score:.0%} of its attention, on average, on the
earlier tokens of that name: it looks the name up and the model copies it. The heads with
the highest scores (mean attention from the position before a repeated name to the earlier
copies of that name, over 100 held-out stories):

{heads}

Knock the heads out (ablate them: their output set to zero, an argument of the glass-box
forward, the weights untouched) and the name probe's top-1 accuracy, over 200 held-out
stories, becomes:

{ablation_lines}

Open the Attention lesson with a prompt such as
`Once upon a time, there was a girl named Mia. Mia had a red ball. One day,` to see it.
{induction_section(induction, training)}"""


def steps_line(config: dict, corpus: dict) -> str:
    """How many steps, on how many tokens: the copying warm-up's windows counted apart."""
    record = WarmupRecord.of(corpus)
    warmup, window, growth = record.steps, record.window, record.growth
    main = config["max_steps"] - warmup
    windows = [warmup_window(step, growth, config["block_size"]) if growth else window
               for step in range(warmup)]  # tokens per example at each warm-up step
    tokens = config["batch_size"] * (sum(windows) + main * config["block_size"])
    if not warmup:
        return f"{main:,} ({tokens:,} tokens seen)"
    if growth:
        warmup_text = (f"{warmup:,} steps of copying warm-up, its windows {window} tokens long until step "
                       f"{growth[0]:,},\n  then growing to {config['block_size']} by step {growth[1]:,}")
    else:
        warmup_text = f"{warmup:,} steps of copying warm-up on {window}-token windows"
    if not main:
        return f"{warmup_text}\n  ({tokens:,} tokens seen in all)"
    return (f"{warmup_text}, then {main:,} on\n"
            f"  {config['block_size']}-token windows ({tokens:,} tokens seen in all)")


def induction_section(induction: dict | None, training: dict) -> str:
    if not induction:
        return ""
    corpus = training["corpus"]
    record = WarmupRecord.of(corpus)
    repeats, warmup, growth = corpus.get("repeat_tokens", 0), record.steps, record.growth
    main = training["config"]["max_steps"] - warmup
    if repeats:
        why = (f"The training text mixes such repeated runs ({repeats / (repeats + corpus['train_tokens']):.0%} of "
               "its tokens) into the stories.")
    elif not warmup:
        why = "This model's training text is the stories alone, which never reward copying at a distance."
    else:
        why = ""
    which_steps = f"All its {warmup:,} steps" if warmup and not main else f"Its first {warmup:,} steps"
    least, most = short_runs(record.window)
    if warmup and growth:
        shortest, longest = corpus["copy_warmup_long_runs"]
        runs = (f"runs and their repeats ({least} to {most} random tokens; {shortest} to {longest} tokens, half of them random\n"
                "and half stretches of the stories)" if corpus.get("copy_warmup_story_spans") else
                f"runs of random tokens and their repeats ({least} to {most} tokens, and {shortest} to {longest})")
        why += (f" {which_steps} trained on windows of the stories mixed half and half with\n{runs}, the windows "
                f"{record.window} tokens long\nuntil step {growth[0]:,} and the whole context by "
                f"step {growth[1]:,}.")
    elif warmup:
        why += (f" {which_steps} trained on {record.window}-token windows of the stories "
                f"mixed half and half\nwith runs of {least} to {most} random tokens and their repeats.")
    formed = next((entry["step"] for entry in training["history"] if entry.get("induction_score", 0) >= FOUND_SCORE),
                  None)  # the build runs the standard test at every logged step
    if formed is not None:
        why += f" The best induction score first reached {FOUND_SCORE:.2f} at step {formed:,}."
    why = why.strip()
    layer, head = induction["induction_head"]
    prev_layer, prev_head = induction["previous_token_head"]
    test = (f"The standard test (Olsson et al., 2022): an end-of-text token, {TEST_LENGTH} random tokens (drawn from\n"
            f"the tokens of the training stories) and the same {TEST_LENGTH} again, {TEST_SEQUENCES} such prompts. "
            f"The first\nhalf cannot be predicted: its loss is {induction['first_half_loss']:.2f} nats per token.")
    if not is_circuit(induction["induction_score"], induction["first_half_loss"], induction["repeat_loss"]):
        return f"""
## No induction circuit
{test} On the repeat it is {induction['repeat_loss']:.2f}: the model does not copy. No head
looks at the token after the earlier copy: the best, layer {layer}, head {head}, puts
{induction['induction_score']:.2f} of its attention there. {why}
"""
    ablated = "\n".join(f"- ablated: {what}: {loss:.2f} nats" for what, loss in
                        induction["repeat_loss_with_ablation"].items())
    others = ", ".join(f"layer {other_layer}, head {other_head} ({score:.2f})" for score, other_layer, other_head
                       in induction.get("induction_heads", []) if (other_layer, other_head) != (layer, head))
    if others:
        others = f"\n\nThe other heads with an induction score of at least {FOUND_SCORE:.2f}: {others}."
    return f"""
## An induction circuit
{test} On the repeat it is **{induction['repeat_loss']:.2f}**: the model copies. The circuit:

- layer {prev_layer}, head {prev_head}, a **previous-token head**: {induction['previous_token_score']:.2f} of its
  attention on the token just before;
- layer {layer}, head {head}, the strongest **induction head**: {induction['induction_score']:.2f} of its attention on the
  token just after the earlier copy of the current token.{others}

The loss on the repeat with one head ablated:

{ablated}

{why}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=MODEL_DIR)
    args = parser.parse_args()
    training = json.loads((args.model / "training.json").read_text())
    evaluation = evaluate(args.model)
    (args.model / "evaluation.json").write_text(json.dumps(evaluation, indent=1))
    (args.model / "README.md").write_text(model_card(training, evaluation))
    print(json.dumps(evaluation, indent=1))


if __name__ == "__main__":
    main()
