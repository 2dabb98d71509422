"""Lesson 7's frozen step: one step of backpropagation and gradient descent taken apart, on a
private copy of the model in use (any family; the shared model is never touched)."""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from core.models import SMALL_MODEL_PARAMETERS

EXAMPLE_TOKENS = 32  # the frozen step learns from the first tokens of the student's prompt


@dataclass
class WeightUpdate:
    name: str
    before: float
    gradient: float
    learning_rate: float
    after: float


@dataclass
class FrozenStep:
    loss: float
    logit_probs: torch.Tensor  # [vocab] softmax at the shown position
    logit_grad: torch.Tensor  # [vocab] ∂loss/∂logits at the shown position
    position: int  # the shown position: the prediction with the largest loss
    target: int  # the token that really follows it
    module_names: list[str]  # the weight matrices and norms of one block, in the block's order
    module_grad_norms: torch.Tensor  # [layer, module] ‖gradient‖ of each
    other_grad_norms: dict[str, float]  # embeddings, the final norm (and an untied unembedding)
    updates: list[WeightUpdate]


def blocks_of(model) -> torch.nn.ModuleList:
    """The model's list of transformer blocks (`h` in GPT-2, `layers` in NeoX and Llama)."""
    return next(child for child in model.base_model.children() if isinstance(child, torch.nn.ModuleList))


def block_module_names(block: torch.nn.Module) -> list[str]:
    """The modules of a block that own a weight (projections and norms), in definition order."""
    return [name for name, module in block.named_modules()
            if not list(module.children()) and isinstance(getattr(module, "weight", None), torch.nn.Parameter)]


def _other_parts(model) -> dict[str, torch.nn.Parameter]:
    base = model.base_model
    blocks = blocks_of(model)
    parts = {"token embeddings": model.get_input_embeddings().weight}
    for name, module in base.named_children():
        if module is blocks or module is model.get_input_embeddings():
            continue
        weight = getattr(module, "weight", None)
        if isinstance(weight, torch.nn.Parameter):
            parts["position embeddings" if isinstance(module, torch.nn.Embedding) else f"final norm ({name})"] = weight
    if model.get_output_embeddings().weight is not model.get_input_embeddings().weight:
        parts["unembedding"] = model.get_output_embeddings().weight
    return parts


def frozen_step(model, token_ids: list[int], learning_rate: float = 0.1, weights_shown: int = 4) -> FrozenStep:
    """One plain gradient-descent step on a private copy of `model`: predict every next token of
    `token_ids`, average the cross-entropy, backpropagate, and move each weight by
    −learning_rate × its gradient."""
    student = copy.deepcopy(model).float()
    student.train(False)
    student.requires_grad_(True)
    ids = torch.tensor([token_ids])  # [1, pos]
    logits = student(input_ids=ids).logits  # [1, pos, vocab]
    logits.retain_grad()
    losses = torch.nn.functional.cross_entropy(logits[0, :-1], ids[0, 1:], reduction="none")  # [pos - 1]
    loss = losses.mean()
    loss.backward()
    shown = int(losses.argmax())  # the prediction the model found hardest: its gradient is the largest
    blocks = blocks_of(student)
    names = block_module_names(blocks[0])
    norms = torch.tensor([[float(block.get_submodule(name).weight.grad.norm()) for name in names]
                          for block in blocks])  # [layer, module]
    others = {label: float(weight.grad.norm()) for label, weight in _other_parts(student).items()}
    mlp_input = next(name for name in names if "mlp" in name and block_module_weight_is_matrix(blocks[0], name))
    weight = blocks[0].get_submodule(mlp_input).weight  # the first MLP matrix of block 0
    largest = weight.grad.abs().flatten().topk(weights_shown).indices.tolist()
    updates = []
    for flat in largest:
        row, column = divmod(flat, weight.shape[1])
        before, gradient = float(weight.detach()[row, column]), float(weight.grad[row, column])
        updates.append(WeightUpdate(f"blocks.0.{mlp_input}.weight[{row}, {column}]", before, gradient, learning_rate,
                                    before - learning_rate * gradient))
    with torch.no_grad():
        for parameter in student.parameters():
            if parameter.grad is not None:
                parameter -= learning_rate * parameter.grad
    for update in updates:  # read back from the updated copy: the numbers are the step's own
        row, column = map(int, update.name.split("[")[1].rstrip("]").split(", "))
        update.after = float(weight.detach()[row, column])
    return FrozenStep(float(loss.detach()), torch.softmax(logits[0, shown].detach(), dim=-1),
                      logits.grad[0, shown].detach(), shown, token_ids[shown + 1], names, norms, others, updates)


def block_module_weight_is_matrix(block: torch.nn.Module, name: str) -> bool:
    return block.get_submodule(name).weight.dim() == 2


def model_for_frozen_step(loaded, load_course_model):
    """The model the frozen step works on: the one in use when it is small enough to copy and take a
    gradient of on every request (the course models, a student's trained model); else the course
    model, from `load_course_model()` (GPT-2 small: a copy of its weights and their gradients, about 1 GB per step)."""
    return loaded if loaded.parameter_count <= SMALL_MODEL_PARAMETERS else load_course_model()


def frozen_step_example(tokenizer, prompt: str, fallback: str, context_length: int) -> list[int]:
    """The example of the frozen step: the first EXAMPLE_TOKENS tokens of the prompt (no more than the
    model's `context_length`: a model trained in lesson 7 may read only 16), or of `fallback` when the
    prompt has fewer than two (one token predicts nothing)."""
    most = min(EXAMPLE_TOKENS, context_length)
    ids = tokenizer(prompt)["input_ids"][:most]
    return ids if len(ids) >= 2 else tokenizer(fallback)["input_ids"][:most]
