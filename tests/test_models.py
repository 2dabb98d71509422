"""Model loading: local folders, the hub path (on tiny random models in a temp folder), failures."""
from __future__ import annotations

import json

import pytest
import torch
from transformers import GPT2Config

from core import models
from core.glassbox import run_trace
from core.models import ModelLoadError, estimated_parameters, load_model, parameter_count
from core.tokenization import gpt2_tokenizer
from tests.conftest import random_gpt2
from tests.tiny_models import VARIANTS, tiny_model


@pytest.fixture
def tiny_folder(tmp_path):
    model = random_gpt2(n_layer=2, n_head=2, n_embd=32, vocab_size=50257, n_positions=64)
    model.save_pretrained(tmp_path)
    gpt2_tokenizer().save_pretrained(tmp_path)
    return tmp_path


def test_local_folder_loads_with_eager_attention_and_traces(tiny_folder):
    loaded = load_model(str(tiny_folder))
    assert loaded.model.config._attn_implementation == "eager"
    assert not loaded.model.training
    ids = loaded.tokenizer("The cat sat on the")["input_ids"]
    assert ids == [464, 3797, 3332, 319, 262]
    trace = run_trace(loaded.model, ids)
    with torch.no_grad():
        out = loaded.model(input_ids=torch.tensor([ids]), output_attentions=True)
    assert len(out.attentions) == 2  # eager attention returns the weights
    torch.testing.assert_close(trace["logits"], out.logits[0], atol=1e-4, rtol=0)


def test_hub_path_uses_from_pretrained_on_the_id(tiny_folder, monkeypatch):
    """A hub id goes through the same from_pretrained calls; here the 'hub' is a temp folder."""
    import transformers
    calls = []
    real_config, real_model = transformers.AutoConfig.from_pretrained, transformers.AutoModelForCausalLM.from_pretrained
    real_tokenizer = transformers.AutoTokenizer.from_pretrained

    def redirect(real):
        def load(source, *args, **kwargs):
            calls.append(source)
            return real(str(tiny_folder) if source == "someone/tiny-gpt2" else source, *args, **kwargs)
        return load

    monkeypatch.setattr(models, "hub_reachable", lambda timeout=1.5: True)
    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", redirect(real_config))
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", redirect(real_model))
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", redirect(real_tokenizer))
    loaded = load_model("someone/tiny-gpt2")
    assert calls.count("someone/tiny-gpt2") == 3  # config, weights, tokenizer
    assert loaded.model.config.n_layer == 2


def test_hub_model_offline_gives_one_sentence(monkeypatch):
    monkeypatch.setattr(models, "hub_reachable", lambda timeout=1.5: False)
    with pytest.raises(ModelLoadError) as error:
        load_model("gpt2")
    message = str(error.value)
    assert "cannot be reached" in message and "\n" not in message and "Traceback" not in message


def test_missing_folder_and_wrong_architecture_are_refused(tmp_path):
    with pytest.raises(ModelLoadError, match="no model folder"):
        load_model(str(tmp_path / "nothing-here"))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "vocab_size": 10}))
    with pytest.raises(ModelLoadError, match=r"is a bert model; the course reads .*GPT-2.*Llama.*models\.$"):
        load_model(str(tmp_path))


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_family_loads_from_a_folder_and_traces(variant, tmp_path, bundled):
    """A tiny random model of each family, saved with the course tokenizer, loads through the
    same path as a student's folder, and its trace equals its own forward."""
    model = tiny_model(variant, vocab_size=len(bundled.tokenizer))
    model.save_pretrained(tmp_path)
    bundled.tokenizer.save_pretrained(tmp_path)
    loaded = load_model(str(tmp_path))
    assert loaded.family == model.config.model_type and loaded.model.config._attn_implementation == "eager"
    ids = loaded.tokenizer("The cat sat on the")["input_ids"]
    with torch.no_grad():
        expected = loaded.model(input_ids=torch.tensor([ids])).logits[0]
    torch.testing.assert_close(run_trace(loaded.model, ids)["logits"], expected, atol=1e-4, rtol=0)


def test_a_folder_without_tokenizer_files_is_refused_naming_them(tiny_folder):
    """Issue 13 B: config.json and weights alone used to load with an empty tokenizer."""
    for name in ("tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"):
        (tiny_folder / name).unlink(missing_ok=True)
    with pytest.raises(ModelLoadError, match=r"no tokenizer files \(tokenizer\.json, or vocab\.json and merges\.txt\); "
                                             r"save them beside the model with tokenizer\.save_pretrained\(folder\)\.$"):
        load_model(str(tiny_folder))


@pytest.mark.parametrize("path", ["/" + "a" * 300, "/" + "b" * 5000, "~/" + "c" * 300, "/proc/1/root/x"])
def test_any_os_error_on_a_typed_path_is_one_sentence(path):
    """Issue 13 C: Path.is_dir() raised OSError [Errno 36] for a name too long."""
    with pytest.raises(ModelLoadError) as error:
        load_model(path)
    assert str(error.value).startswith("There is no model folder at") and "\n" not in str(error.value)


def test_weights_that_do_not_cover_the_config_are_refused(tiny_folder):
    """Issue 13 D: n_layer raised above the saved weights used to load with random layers."""
    config = json.loads((tiny_folder / "config.json").read_text())
    (tiny_folder / "config.json").write_text(json.dumps({**config, "n_layer": 4}))
    with pytest.raises(ModelLoadError, match=r"weights do not match its config\.json: \d+ weights missing \(e\.g\. .*h\.2\."):
        load_model(str(tiny_folder))
    (tiny_folder / "config.json").write_text(json.dumps({**config, "n_layer": 1}))
    with pytest.raises(ModelLoadError, match="not used by the config"):
        load_model(str(tiny_folder))
    (tiny_folder / "config.json").write_text(json.dumps({**config, "n_inner": 100}))
    with pytest.raises(ModelLoadError, match="of the wrong shape"):
        load_model(str(tiny_folder))


def test_hosted_app_gives_one_answer_for_missing_and_not_a_model(tmp_path, monkeypatch):
    """Served to others, the folder box does not tell a visitor which paths exist on the server;
    an instructor on a laptop still hears the precise reason."""
    (tmp_path / "notes.txt").write_text("not a model")
    missing, not_model = str(tmp_path / "nothing-here"), str(tmp_path)
    local = [str(pytest.raises(ModelLoadError, load_model, path).value) for path in (missing, not_model)]
    assert local[0] != local[1]
    monkeypatch.setenv("GLASSBOX_HOSTED", "1")
    hosted = [str(pytest.raises(ModelLoadError, load_model, path).value) for path in (missing, not_model)]
    assert hosted[0].replace(missing, "PATH") == hosted[1].replace(not_model, "PATH") == "No model could be loaded from “PATH”."


def test_a_folder_without_weights_is_told_so_and_served_to_others_every_folder_failure_is_one_answer(tmp_path, monkeypatch):
    """A hostile-student pass: a saved model whose model.safetensors was deleted was "could not be
    loaded (OSError)"; and served to others, such a folder (or one whose config names too many layers)
    gave its own sentence where a missing folder gave "No model could be loaded", telling a visitor
    which folders exist on the server."""
    import shutil

    no_weights = tmp_path / "no-weights"
    shutil.copytree(models.BUNDLED_MODEL_DIR, no_weights)
    (no_weights / "model.safetensors").unlink()
    assert str(pytest.raises(ModelLoadError, load_model, str(no_weights)).value) == (
        f"The folder “{no_weights}” holds a config.json but no weights (model.safetensors or pytorch_model.bin); "
        "save them with model.save_pretrained(folder).")
    deeper = tmp_path / "deeper"
    shutil.copytree(models.BUNDLED_MODEL_DIR, deeper)
    config = json.loads((deeper / "config.json").read_text())
    (deeper / "config.json").write_text(json.dumps({**config, "n_layer": config["n_layer"] + 4}))
    monkeypatch.setenv("GLASSBOX_HOSTED", "1")
    folders = (no_weights, deeper, tmp_path / "missing", tmp_path)
    answers = {str(pytest.raises(ModelLoadError, load_model, str(folder)).value).replace(str(folder), "PATH")
               for folder in folders}
    assert answers == {"No model could be loaded from “PATH”."}


def test_gpt_j_is_listed_and_refused_with_the_memory_it_would_need(monkeypatch):
    monkeypatch.setattr(models, "hub_reachable", lambda timeout=1.5: pytest.fail("the hub must not be asked"))
    with pytest.raises(ModelLoadError, match=r"^GPT-J 6B has about 6,051M parameters and would need about 30 GB of memory; "
                                             r"this app allows models up to 520M parameters\.$"):
        load_model("gpt-j-6b")


def test_reference_sizes_are_counted_from_the_shipped_configs():
    """The size table's parameter counts are computed from each config (a model built on the meta
    device), and agree with the published sizes of these models."""
    rows = {row["name"]: row for row in models.reference_models()}
    assert rows["GPT-2 small"]["parameters"] == 124_439_808 and rows["Pythia 70M"]["parameters"] == 70_426_624
    assert rows["Llama 3.1 8B"]["kv_heads"] == 8 and 8.0e9 < rows["Llama 3.1 8B"]["parameters"] < 8.1e9
    assert rows["Qwen2.5 0.5B"]["parameters"] == 494_032_768 and rows["SmolLM2 135M"]["parameters"] == 134_515_008
    hub_ids = {entry["hub_id"] for entry in models.reference_configs()}
    assert all(choice.source in hub_ids for choice in models.REGISTRY if choice.from_hub and choice.key != "distilgpt2")


def test_the_warm_up_and_a_page_counting_reference_sizes_at_once_get_one_table(monkeypatch):
    """The server's warm-up thread counts the reference sizes while a student may already open
    lesson 0: both must get the same rows, counted once (before the lock, both appended theirs)."""
    import threading

    monkeypatch.setattr(models, "_reference_rows", [])
    results = []
    threads = [threading.Thread(target=lambda: results.append(models.reference_models())) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(results) == 3 and results[0] == results[1] == results[2]
    assert len(results[0]) == len(models.reference_configs())


def test_the_picker_groups_models_by_family():
    from core.families import FAMILIES

    labels = [models.picker_label(choice) for choice in models.REGISTRY]
    assert all(label.split(" · ")[0] in {f.name for f in FAMILIES.values()} for label in labels)
    assert {choice.family for choice in models.REGISTRY} == {"gpt2", "openai-gpt", "gpt_neo", "gptj", "gpt_neox",
                                                              "llama", "qwen2"}


def test_too_large_models_are_refused_before_loading_weights(tmp_path):
    GPT2Config(n_layer=48, n_embd=1600, n_head=25).save_pretrained(tmp_path)  # gpt2-xl sizes, no weights
    with pytest.raises(ModelLoadError, match="parameters"):
        load_model(str(tmp_path))


def test_estimated_parameters_match_the_real_count():
    for config in [dict(n_layer=2, n_head=2, n_embd=32), dict(n_layer=3, n_head=4, n_embd=64, n_inner=100)]:
        model = random_gpt2(**config)
        assert estimated_parameters(model.config) == parameter_count(model)
    for variant in VARIANTS:
        model = tiny_model(variant)
        assert estimated_parameters(model.config) == parameter_count(model), variant


def test_bundled_model_is_small_and_loads(bundled):
    size = sum(f.stat().st_size for f in models.BUNDLED_MODEL_DIR.iterdir())
    assert size <= 10 * 1024 * 1024
    assert bundled.model.config.model_type == "gpt2"
    assert bundled.tokenizer("The cat sat on the")["input_ids"]


def test_a_model_that_does_not_fit_in_the_free_memory_is_refused_in_one_sentence(tmp_path, monkeypatch):
    GPT2Config().save_pretrained(tmp_path)  # GPT-2 small's sizes, no weights: refused before any are read
    needed = estimated_parameters(GPT2Config()) * models.BYTES_PER_PARAMETER
    monkeypatch.setattr(models, "available_memory_bytes", lambda: int(needed) - 1)
    with pytest.raises(ModelLoadError, match=r"needs about 0\.6 GB of memory and only 0\.6 GB is free here now\.$"):
        load_model(str(tmp_path))
    monkeypatch.setattr(models, "available_memory_bytes", lambda: int(needed) + 1)
    with pytest.raises(ModelLoadError, match="holds a config.json but no weights"):  # it fits: it goes on to the (missing) weights
        load_model(str(tmp_path))


def test_small_models_load_whatever_the_memory_says(tiny_folder, monkeypatch):
    monkeypatch.setattr(models, "available_memory_bytes", lambda: 0)  # the course's own models always load
    assert load_model(str(tiny_folder)).model is not None


@pytest.mark.parametrize("files, expected", [
    ({"meminfo": "MemTotal: 8000000 kB\nMemAvailable: 4000000 kB\n"}, 4_096_000_000),
    ({"meminfo": "MemAvailable: 4000000 kB\n", "memory.max": "3000000000\n", "memory.current": "1000000000\n"},
     2_000_000_000),  # cgroup v2: the container's limit is the tighter one
    ({"meminfo": "MemAvailable: 4000000 kB\n", "memory.max": "max\n", "memory.current": "1000000000\n"},
     4_096_000_000),
    ({"meminfo": "MemAvailable: 4000000 kB\n", "memory/memory.limit_in_bytes": "1500000000\n",
      "memory/memory.usage_in_bytes": "500000000\n"}, 1_000_000_000),  # cgroup v1
    ({"meminfo": "MemAvailable: 4000000 kB\n", "memory/memory.limit_in_bytes": "9223372036854771712\n",
      "memory/memory.usage_in_bytes": "500000000\n"}, 4_096_000_000),  # v1 without a limit
    ({}, None),
])
def test_available_memory_is_the_tighter_of_the_machine_and_the_container(tmp_path, files, expected):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert models.available_memory_bytes(tmp_path, tmp_path / "meminfo") == expected


FIRST_IMPORTS_IN_THREADS = """
import threading
errors = []

def student(work):
    try:
        work()
    except Exception as error:
        errors.append(repr(error))

def open_lesson():
    from core.models import load_model
    load_model("glassbox-stories")

def open_tokenization():
    from core.tokenization import gpt2_tokenizer
    gpt2_tokenizer()

def open_training():
    import core.training  # noqa: F401

threads = [threading.Thread(target=student, args=(work,))
           for work in (open_lesson, open_tokenization, open_training) * 3]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(errors)
"""


@pytest.mark.parametrize("attempt", range(2))
def test_students_opening_lessons_together_on_a_fresh_app_import_transformers_safely(attempt):
    """Each Streamlit session runs in its own thread: on a freshly started app, the first
    lessons opened at the same moment all import transformers at once (see core/hf.py)."""
    import subprocess
    import sys

    from core.course import APP_DIR

    result = subprocess.run([sys.executable, "-c", FIRST_IMPORTS_IN_THREADS], cwd=APP_DIR, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_what_was_typed_is_named_plainly_and_a_folder_without_a_model_is_not_called_missing(tmp_path):
    """A hostile-student pass: "/" and "/etc" exist, yet were said "could not be found (ValueError)";
    a config.json with n_layer "two" likewise; a leading emoji became the warning box's icon and
    left the sentence naming a model never typed; a NUL or 5,000 characters went into the sentence
    raw. (On a hosted copy the folder cases keep their one answer: the test above.)"""
    import json
    import shutil

    def refusal(source: str) -> str:
        return str(pytest.raises(ModelLoadError, load_model, source).value)

    assert refusal(str(tmp_path)) == (f"The folder “{tmp_path}” holds no config.json, so it is not a saved model "
                                      "(save one with model.save_pretrained(folder)).")
    broken = tmp_path / "broken"
    shutil.copytree(models.BUNDLED_MODEL_DIR, broken)
    config = json.loads((broken / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps({**config, "n_layer": "two"}))
    said = refusal(str(broken))
    assert said.startswith(f"The config.json in “{broken}” cannot be read: ") and "n_layer" in said
    assert refusal("🤖model").startswith("“🤖model”")  # not the emoji first: st.warning would take it as its icon
    assert refusal("/tmp/a\x00b") == "There is no model folder at “/tmp/a\\x00b”."
    long = refusal("/" + "a" * 5000)
    assert len(long) < 200 and "…" in long
