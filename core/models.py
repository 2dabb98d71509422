"""Which models the course can use, and how they are loaded.

The bundled course models are the default and need nothing but this repository. Real models
of every family the glass box reads (GPT-2, GPT-Neo, GPT-J, Pythia, SmolLM, Qwen…) load from
the Hugging Face hub where it is reachable (e.g. on Streamlit Community Cloud). Any local
folder holding such a model works too. Loading failures become one plain sentence
(`ModelLoadError`), never a traceback; a model is refused, not half-loaded, when its weights do
not cover its config or its folder lacks a tokenizer: every number on screen must be the model's.
"""
from __future__ import annotations

import functools
import json
import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
BUNDLED_MODEL_DIR = MODELS_DIR / "glassbox-stories"
MODERN_MODEL_DIR = MODELS_DIR / "glassbox-stories-llama"
HUB_HOST = "huggingface.co"
MAX_PARAMETERS = 520_000_000  # Qwen2.5-0.5B (494M) and gpt2-medium (355M) fit a 2.7 GB Cloud app one at a time
BYTES_PER_PARAMETER = 4 * 1.25  # float32 weights, and room for the traces of a few prompts
SMALL_MODEL_PARAMETERS = 50_000_000  # the course models, trained ones: always loaded, many cached, cheap to step
TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "tokenizer.model", "spiece.model")


@dataclass(frozen=True)
class ModelChoice:
    key: str  # what the model picker stores
    label: str  # what the student reads
    source: str  # a folder path or a hub id, passed to from_pretrained
    from_hub: bool
    family: str = ""  # a key of core.families.FAMILIES ("" for a folder not yet read)


REGISTRY: tuple[ModelChoice, ...] = (
    ModelChoice("glassbox-stories", "Course model, GPT-2 design (bundled, offline)", str(BUNDLED_MODEL_DIR),
                from_hub=False, family="gpt2"),
    ModelChoice("glassbox-stories-llama", "Course model, Llama design (bundled, offline)", str(MODERN_MODEL_DIR),
                from_hub=False, family="llama"),
    ModelChoice("gpt2", "GPT-2 small (124M, hub)", "gpt2", True, "gpt2"),
    ModelChoice("distilgpt2", "DistilGPT-2 (82M, hub)", "distilgpt2", True, "gpt2"),
    ModelChoice("gpt2-medium", "GPT-2 medium (355M, hub)", "gpt2-medium", True, "gpt2"),
    ModelChoice("openai-gpt", "GPT, 2018 (117M, hub)", "openai-community/openai-gpt", True, "openai-gpt"),
    ModelChoice("gpt-neo-125m", "GPT-Neo 125M (hub)", "EleutherAI/gpt-neo-125m", True, "gpt_neo"),
    ModelChoice("gpt-j-6b", "GPT-J 6B (hub)", "EleutherAI/gpt-j-6b", True, "gptj"),
    ModelChoice("pythia-70m", "Pythia 70M (hub)", "EleutherAI/pythia-70m", True, "gpt_neox"),
    ModelChoice("pythia-160m", "Pythia 160M (hub)", "EleutherAI/pythia-160m", True, "gpt_neox"),
    ModelChoice("smollm2-135m", "SmolLM2 135M (hub)", "HuggingFaceTB/SmolLM2-135M", True, "llama"),
    ModelChoice("qwen2.5-0.5b", "Qwen2.5 0.5B (hub)", "Qwen/Qwen2.5-0.5B", True, "qwen2"),
)
DEFAULT_MODEL = REGISTRY[0]


def family_order() -> list[str]:
    """The families in the order the picker groups them: the course models' first, then by year."""
    from core.families import FAMILIES

    return sorted(FAMILIES, key=lambda name: (FAMILIES[name].year, name))


def picker_label(choice: ModelChoice) -> str:
    """The model's label with its family in front, so the picker reads as groups."""
    from core.families import FAMILIES

    family = FAMILIES.get(choice.family)
    return f"{family.name} · {choice.label}" if family else choice.label


def is_hosted() -> bool:
    """Served to others (a class server, Streamlit Community Cloud, which runs apps from
    /mount/src): then a typed folder path gets one answer whether or not it exists, so a visitor
    cannot map the server's files. An instructor on a laptop gets the precise reason."""
    if os.environ.get("GLASSBOX_HOSTED", "").strip() not in ("", "0"):
        return True
    return str(Path(__file__).resolve()).startswith("/mount/src/")


def folder_config(key_or_source: str) -> dict | None:
    """The config.json of a model that lives in a folder (the bundled one or a local folder), read
    without loading the model or importing transformers; None for hub models and bad folders."""
    import json

    path = Path(choice_for(key_or_source).source) / "config.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def config_summary(config: dict) -> dict[str, int]:
    """Layers, heads, key/value heads, width, context and vocabulary from a config.json of any
    family (each family names them its own way), without importing transformers."""
    def first(*names: str) -> int:
        return next((int(config[name]) for name in names if config.get(name) is not None), 0)
    heads = first("n_head", "num_heads", "num_attention_heads")
    return {"layers": first("n_layer", "num_layers", "num_hidden_layers"), "heads": heads,
            "kv_heads": first("num_key_value_heads") or heads, "width": first("n_embd", "hidden_size"),
            "context": first("n_positions", "max_position_embeddings", "n_ctx"), "vocab": first("vocab_size")}


def reference_configs() -> list[dict]:
    """The published config.json sizes of well-known models (models/reference_configs.json), so
    comparisons work offline: [{"name", "hub_id", "config"}]."""
    import json

    return json.loads((MODELS_DIR / "reference_configs.json").read_text(encoding="utf-8"))["models"]


def reference_config(hub_id: str):
    """A transformers config built from the shipped sizes of a well-known model (None if unknown)."""
    from core.hf import AutoConfig

    for entry in reference_configs():
        if entry["hub_id"] == hub_id:
            fields = dict(entry["config"])
            return AutoConfig.for_model(fields.pop("model_type"), **fields)
    return None


_reference_rows: list[dict] = []
_reference_rows_lock = threading.Lock()  # the warm-up thread and a page may ask at the same moment


def reference_models() -> list[dict]:
    """One row of sizes per well-known model, the parameters counted on a model built on the
    meta device from its config (about 2 s for all, once per process; the server's warm-up
    thread does it while a student reads Home)."""
    with _reference_rows_lock:
        if not _reference_rows:
            from core.architectures import weights_of
            from core.hf import MODEL_BUILD_LOCK, AutoModelForCausalLM
            import torch

            for entry in reference_configs():
                config = reference_config(entry["hub_id"])
                with MODEL_BUILD_LOCK, torch.device("meta"):
                    model = AutoModelForCausalLM.from_config(config)
                _reference_rows.append(model_row(entry["name"], config.model_type, weights_of(model).arch,
                                                 parameter_count(model)))
        return list(_reference_rows)


def parameter_count(model) -> int:
    """A model's distinct parameters (a tied embedding and unembedding counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def model_row(name: str, family: str, arch, parameters: int) -> dict:
    """A model's sizes, in the rows' format of `reference_models()`."""
    return {"name": name, "family": family, "layers": arch.n_layer, "heads": arch.n_head, "kv_heads": arch.n_kv_head,
            "d_model": arch.d_model, "d_head": arch.d_head, "d_mlp": arch.d_mlp, "context": arch.n_ctx,
            "vocab": arch.vocab, "parameters": parameters}


class ModelLoadError(Exception):
    """A model could not be loaded; the message is one sentence a student can read."""


@dataclass(frozen=True)
class LoadedModel:
    name: str
    source: str
    model: object  # a Hugging Face causal LM in eval mode with eager attention; shared, never mutated
    tokenizer: object  # a Hugging Face tokenizer

    @property
    def arch(self):
        from core.architectures import weights_of

        return weights_of(self.model).arch

    @property
    def context_length(self) -> int:
        return self.arch.n_ctx

    @property
    def family(self) -> str:
        return self.model.config.model_type

    @functools.cached_property  # a large vocabulary's dict takes ~0.1 s to build: once per loaded model
    def vocabulary(self) -> dict[str, int]:
        """The tokenizer's vocabulary, token -> id (two models read the same tokens when theirs are equal)."""
        return self.tokenizer.get_vocab()

    @functools.cached_property  # read from disk once per loaded model (lessons ask on every rerun)
    def training_record(self) -> dict:
        """What the model's build recorded (the course models' training.json); {} when it is not known."""
        record = Path(self.source) / "training.json"
        return json.loads(record.read_text(encoding="utf-8")) if record.is_file() else {}

    @property
    def seen_token_ids(self) -> list[int] | None:
        """The tokens of the model's training text (what it ever saw as input), when its folder
        records them; None when that is not known."""
        return self.training_record.get("seen_token_ids")

    @property
    def induction_history(self) -> list[dict]:
        """The build's standard induction test at every logged step (step, induction_score,
        repeat_loss_ratio, val_loss), when the build ran it; [] when it did not."""
        return [entry for entry in self.training_record.get("history", []) if "induction_score" in entry]

    @property
    def parameter_count(self) -> int:
        return parameter_count(self.model)


def choice_for(key_or_source: str) -> ModelChoice:
    """The registry entry for a key, or a local-folder entry for a path."""
    for choice in REGISTRY:
        if key_or_source in (choice.key, choice.source):
            return choice
    return ModelChoice(key_or_source, f"Local folder {key_or_source}", key_or_source, from_hub=False)


def estimated_parameters(config) -> int:
    """Parameters of a model of this config, counted on a model built on the "meta" device (no
    memory, no weights fetched), for every family; the tied embedding counted once."""
    import torch

    from core.hf import MODEL_BUILD_LOCK, AutoModelForCausalLM

    with MODEL_BUILD_LOCK, torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


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


def _is_folder(source: str) -> bool:
    """Whether `source` is a folder; any OS error (a name too long, no permission) counts as no."""
    try:
        return Path(source).expanduser().is_dir()
    except (OSError, ValueError):
        return False


def _looks_like_path(source: str) -> bool:
    return source.startswith((".", "/", "~")) or "\\" in source or len(source) > 200


def _size_check(source: str, parameters: int, label: str) -> None:
    needed = parameters * BYTES_PER_PARAMETER
    if parameters > MAX_PARAMETERS:
        raise ModelLoadError(f"{label} has about {parameters / 1e6:,.0f}M parameters and would need about "
                             f"{needed / 1e9:.0f} GB of memory; this app allows models up to "
                             f"{MAX_PARAMETERS / 1e6:.0f}M parameters.")
    free = available_memory_bytes() if parameters > SMALL_MODEL_PARAMETERS else None
    if free is not None and needed > free:
        raise ModelLoadError(f"{label} needs about {needed / 1e9:.1f} GB of memory and only {free / 1e9:.1f} GB "
                             "is free here now.")


def _check_weights_cover_config(named: str, info: dict) -> None:
    """Refuse a model whose saved weights do not match its config: transformers fills missing
    weights with random values and only logs it, which would make every number on screen false."""
    problems = []
    for kind, words in (("missing_keys", "missing"), ("unexpected_keys", "not used by the config"),
                        ("mismatched_keys", "of the wrong shape")):
        keys = sorted(str(k if isinstance(k, str) else k[0]) for k in info.get(kind, ()) or ())
        if keys:
            problems.append(f"{len(keys)} weight{'s' if len(keys) > 1 else ''} {words} (e.g. {keys[0]})")
    if problems:
        raise ModelLoadError(f"{named}'s weights do not match its config.json: {'; '.join(problems)}. "
                             "Save the model again with model.save_pretrained(folder), or fix config.json.")


def _check_tokenizer(source: str, named: str, is_folder: bool, tokenizer, vocab_size: int) -> None:
    if is_folder and not any((Path(source).expanduser() / name).is_file() for name in TOKENIZER_FILES):
        raise ModelLoadError(f"The folder {named} has no tokenizer files (tokenizer.json, or vocab.json and "
                             "merges.txt); save them beside the model with tokenizer.save_pretrained(folder).")
    if len(tokenizer) == 0 or not tokenizer("a")["input_ids"]:
        raise ModelLoadError(f"{named}'s tokenizer turns text into no tokens; save the tokenizer the model was "
                             "trained with beside it, with tokenizer.save_pretrained(folder).")
    if len(tokenizer) > vocab_size:
        raise ModelLoadError(f"{named}'s tokenizer has {len(tokenizer):,} tokens but the model only "
                             f"{vocab_size:,}: they do not belong together.")


def named_source(source: str, most: int = 120) -> str:
    """A typed model name or path as a sentence shows it: in quotes (a leading emoji would become
    the warning box's icon), control characters written out, and a long one shortened."""
    shown = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in source)
    if len(shown) > most:
        shown = f"{shown[:most // 2]}…{shown[-(most // 2 - 1):]}"
    return f"“{shown}”"


WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


def load_model(key_or_source: str) -> LoadedModel:
    """Load a registry model, a hub id or a local folder, in eval mode with eager attention. Every
    failure is a ModelLoadError of one sentence, naming what was typed as named_source shows it.
    Served to others (is_hosted), every failure of a folder or path is the same sentence: what a
    folder holds would tell a visitor that it exists."""
    source = choice_for(key_or_source).source
    try:
        return _load_model(key_or_source)
    except ModelLoadError as error:
        if is_hosted() and (_is_folder(source) or _looks_like_path(source)):
            raise ModelLoadError(f"No model could be loaded from {named_source(source)}.") from error
        raise


def _load_model(key_or_source: str) -> LoadedModel:
    from core.architectures import UnsupportedModel, weights_of
    from core.families import FAMILIES, supported_families_sentence
    from core.hf import MODEL_BUILD_LOCK, AutoConfig, AutoModelForCausalLM, AutoTokenizer

    choice = choice_for(key_or_source)
    source = choice.source
    is_folder = _is_folder(source)
    named = named_source(source)  # in every sentence below
    if not is_folder:
        if _looks_like_path(source):
            raise ModelLoadError(f"There is no model folder at {named}.")
        known = reference_config(source)  # a well-known model's size is checked before anything is downloaded
        if known is not None:
            _size_check(source, estimated_parameters(known), choice.label.split(" (")[0])
        if not hub_reachable():
            raise ModelLoadError(f"{named} needs the Hugging Face hub, which cannot be reached from here.")
    try:
        config = AutoConfig.from_pretrained(source)
    except Exception as error:  # noqa: BLE001 - any failure becomes one sentence
        if is_folder and not (Path(source).expanduser() / "config.json").is_file():
            raise ModelLoadError(f"The folder {named} holds no config.json, so it is not a saved model "
                                 "(save one with model.save_pretrained(folder)).") from error
        if is_folder:
            reason = " ".join(str(error).split())[:160]
            raise ModelLoadError(f"The config.json in {named} cannot be read: {reason}.") from error
        raise ModelLoadError(f"{named} could not be found ({type(error).__name__}).") from error
    if config.model_type not in FAMILIES:
        raise ModelLoadError(f"{named} is a {config.model_type} model; {supported_families_sentence()}.")
    _size_check(source, estimated_parameters(config), named)
    if is_folder and not any((Path(source).expanduser() / name).is_file() for name in WEIGHT_FILES):
        raise ModelLoadError(f"The folder {named} holds a config.json but no weights ({WEIGHT_FILES[0]} or "
                             f"{WEIGHT_FILES[2]}); save them with model.save_pretrained(folder).")
    try:
        with MODEL_BUILD_LOCK:  # see core.hf: concurrent loads left lm_head untied
            model, info = AutoModelForCausalLM.from_pretrained(  # mismatches are reported, then refused below
                source, attn_implementation="eager", output_loading_info=True, ignore_mismatched_sizes=True)
            tokenizer = AutoTokenizer.from_pretrained(source)
    except Exception as error:  # noqa: BLE001
        raise ModelLoadError(f"{named} could not be loaded ({type(error).__name__}).") from error
    _check_weights_cover_config(named, info)
    _check_tokenizer(source, named, is_folder, tokenizer, config.vocab_size)
    model.eval()
    model.requires_grad_(False)
    try:
        weights_of(model)
    except UnsupportedModel as error:
        raise ModelLoadError(f"{named} cannot be read by the glass box: {error}.") from error
    return LoadedModel(name=choice.key, source=source, model=model, tokenizer=tokenizer)


def load_local_model(folder: Path):
    """(model, tokenizer) from a folder, for scripts."""
    loaded = load_model(str(folder))
    return loaded.model, loaded.tokenizer
