"""Which models the course can use, and how they are loaded.

The bundled course model is the default and needs nothing but this repository. The GPT-2
family loads from the Hugging Face hub where it is reachable (e.g. on Streamlit Community
Cloud). Any local folder holding a GPT-2-architecture model works too. Loading failures
become one plain sentence (`ModelLoadError`), never a traceback.
"""
from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
BUNDLED_MODEL_DIR = MODELS_DIR / "glassbox-stories"
HUB_HOST = "huggingface.co"
MAX_PARAMETERS = 400_000_000  # gpt2-medium (355M) fits a 2.7 GB Streamlit Cloud app; gpt2-large does not
BYTES_PER_PARAMETER = 4 * 1.25  # float32 weights, and room for the traces of a few prompts
SMALL_MODEL_PARAMETERS = 50_000_000  # the course model, trained ones: always loaded, many cached, cheap to step


@dataclass(frozen=True)
class ModelChoice:
    key: str  # what the model picker stores
    label: str  # what the student reads
    source: str  # a folder path or a hub id, passed to from_pretrained
    from_hub: bool


REGISTRY: tuple[ModelChoice, ...] = (
    ModelChoice("glassbox-stories", "Course model (bundled, offline)",
                str(BUNDLED_MODEL_DIR), from_hub=False),
    ModelChoice("gpt2", "GPT-2 small (124M, hub)", "gpt2", from_hub=True),
    ModelChoice("distilgpt2", "DistilGPT-2 (82M, hub)", "distilgpt2", from_hub=True),
    ModelChoice("gpt2-medium", "GPT-2 medium (355M, hub)", "gpt2-medium", from_hub=True),
)
DEFAULT_MODEL = REGISTRY[0]


def folder_config(key_or_source: str) -> dict | None:
    """The config.json of a model that lives in a folder (the bundled one or a local folder), read
    without loading the model or importing transformers; None for hub models and bad folders."""
    import json

    path = Path(choice_for(key_or_source).source) / "config.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


class ModelLoadError(Exception):
    """A model could not be loaded; the message is one sentence a student can read."""


@dataclass(frozen=True)
class LoadedModel:
    name: str
    source: str
    model: object  # GPT2LMHeadModel in eval mode; shared, never mutated
    tokenizer: object  # a Hugging Face tokenizer

    @property
    def context_length(self) -> int:
        return self.model.config.n_positions


def choice_for(key_or_source: str) -> ModelChoice:
    """The registry entry for a key, or a local-folder entry for a path."""
    for choice in REGISTRY:
        if key_or_source in (choice.key, choice.source):
            return choice
    return ModelChoice(key_or_source, f"Local folder {key_or_source}", key_or_source, from_hub=False)


def estimated_parameters(config) -> int:
    """Parameters of a GPT-2 config, from its sizes alone (before any weights are fetched)."""
    d, layers = config.n_embd, config.n_layer
    d_mlp = config.n_inner or 4 * d
    per_block = 4 * d + (3 * d * d + 3 * d) + (d * d + d) + (d * d_mlp + d_mlp) + (d_mlp * d + d)
    return config.vocab_size * d + config.n_positions * d + layers * per_block + 2 * d


def available_memory_bytes(cgroup: Path = Path("/sys/fs/cgroup"), meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """Memory this process can still take: the machine's available memory, capped by what is left
    of a container's limit (cgroup v2 memory.max / memory.current, or v1 limit / usage), which is
    how hosted apps such as Community Cloud are limited. None where neither can be read."""
    free = None
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                free = int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    for limit_file, usage_file in (("memory.max", "memory.current"),
                                   ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes")):
        try:
            limit = (cgroup / limit_file).read_text().strip()
            usage = int((cgroup / usage_file).read_text())
        except (OSError, ValueError):
            continue
        if limit != "max" and int(limit) < 2**60:  # v1 writes "no limit" as a number near 2^63
            left = max(0, int(limit) - usage)
            free = left if free is None else min(free, left)
        break
    return free


def hub_reachable(timeout: float = 1.5) -> bool:
    """A quick TCP check, so an offline laptop hears 'no internet' at once, not after retries."""
    try:
        with socket.create_connection((HUB_HOST, 443), timeout=timeout):
            return True
    except OSError:
        return False


def load_model(key_or_source: str) -> LoadedModel:
    """Load a registry model, a hub id or a local folder, in eval mode with eager attention."""
    from core.hf import AutoConfig, AutoTokenizer, GPT2LMHeadModel

    choice = choice_for(key_or_source)
    source = choice.source
    is_folder = Path(source).is_dir()
    if not is_folder:
        if source.startswith((".", "/", "~")) or "\\" in source:
            raise ModelLoadError(f"There is no model folder at {source}.")
        if not hub_reachable():
            raise ModelLoadError(f"{source} needs the Hugging Face hub, which cannot be reached from here.")
    try:
        config = AutoConfig.from_pretrained(source)
    except Exception as error:  # noqa: BLE001 - any failure becomes one sentence
        raise ModelLoadError(f"{source} could not be found ({type(error).__name__}).") from error
    if config.model_type != "gpt2":
        raise ModelLoadError(f"{source} is a {config.model_type} model; the course reads GPT-2-architecture models only.")
    parameters = estimated_parameters(config)
    if parameters > MAX_PARAMETERS:
        raise ModelLoadError(f"{source} has about {parameters / 1e6:.0f}M parameters, "
                             f"more than the {MAX_PARAMETERS / 1e6:.0f}M this app allows.")
    needed = parameters * BYTES_PER_PARAMETER
    free = available_memory_bytes() if parameters > SMALL_MODEL_PARAMETERS else None
    if free is not None and needed > free:
        raise ModelLoadError(f"{source} needs about {needed / 1e9:.1f} GB of memory and only {free / 1e9:.1f} GB "
                             "is free here now.")
    try:
        model = GPT2LMHeadModel.from_pretrained(source, attn_implementation="eager")
        tokenizer = AutoTokenizer.from_pretrained(source)
    except Exception as error:  # noqa: BLE001
        raise ModelLoadError(f"{source} could not be loaded ({type(error).__name__}).") from error
    model.eval()
    model.requires_grad_(False)
    return LoadedModel(name=choice.key, source=source, model=model, tokenizer=tokenizer)


def load_local_model(folder: Path):
    """(model, tokenizer) from a folder, for scripts."""
    loaded = load_model(str(folder))
    return loaded.model, loaded.tokenizer
