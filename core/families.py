"""The model families the glass box reads: names, years and what each changes from GPT-2.

Plain data with no torch import, so the course home can list them and stay fast; the
converters that read each family's weights are in `core.architectures`.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Family:
    name: str  # what a student reads
    year: int
    differs: str  # one line: what this family changes from GPT-2


# keys are Hugging Face `config.model_type` values
FAMILIES: dict[str, Family] = {
    "gpt2": Family("GPT-2", 2019, "the course's reference design"),
    "openai-gpt": Family("GPT (openai-gpt)", 2018, "the norm after each addition (post-LN), no final norm"),
    "gpt_neo": Family("GPT-Neo", 2021, "every other layer sees only the last few tokens (local attention); "
                                       "scores not divided by √d_head"),
    "gptj": Family("GPT-J", 2021, "rotary positions on part of each head; attention and MLP side by side from one norm"),
    "gpt_neox": Family("GPT-NeoX / Pythia", 2022, "rotary positions on part of each head; attention and MLP side by side"),
    "llama": Family("Llama", 2023, "RMSNorm, rotary positions, a gated (SwiGLU) MLP, grouped-query attention"),
    "mistral": Family("Mistral", 2023, "as Llama, with a sliding attention window"),
    "qwen2": Family("Qwen2", 2024, "as Llama, with biases on queries, keys and values"),
}


def supported_families_sentence() -> str:
    names = [family.name for family in FAMILIES.values()]
    return "the course reads " + ", ".join(names[:-1]) + " and " + names[-1] + " models"
