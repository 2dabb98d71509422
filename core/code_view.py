"""The code beside the number: for each figure of each lesson, the project's own functions that
computed it, read from the source at run time (so what a student reads can never drift from
what ran). Plain data and `inspect`; the page shows it on request."""
from __future__ import annotations

import importlib
import inspect

# (lesson number, figure slot) -> the functions that computed it, as "module.function"
FIGURE_CODE: dict[tuple[int, str], tuple[str, ...]] = {
    (0, "map"): ("core.model_map.build_map", "core.model_map.head_entropies"),
    (0, "inside"): ("core.model_map.inside_of",),
    (0, "costs"): ("core.model_map.model_costs", "core.model_map.head_parameters"),
    (1, "predict-count"): ("core.tokenization.prompt_tokens",),
    (1, "token-chips"): ("core.tokenization.prompt_tokens",),
    (1, "token-counts"): ("core.tokenization.prompt_tokens",),
    (1, "token-table"): ("core.tokenization.prompt_tokens",),
    (1, "tokenizer-comparison"): ("core.tokenization.split_characters", "core.tokenization.split_words"),
    (1, "bpe-merges"): ("core.tokenization.bpe_merge_steps",),
    (1, "words-split"): ("core.tokenization.prompt_tokens",),
    (2, "embedding-lookup"): ("core.glassbox.run_trace",),
    (2, "cosine"): ("core.embeddings.cosine_matrix",),
    (2, "neighbours"): ("core.embeddings.nearest_neighbours",),
    (2, "pca"): ("core.embeddings.vocabulary_map", "core.embeddings.principal_directions"),
    (2, "compare-tokens"): ("core.embeddings.cosine",),
    (3, "embedding-sum"): ("core.glassbox.run_trace",),
    (3, "sinusoidal"): ("core.positions.sinusoidal_encoding",),
    (3, "rotary"): ("core.glassbox.rotary_angles", "core.glassbox.rotate", "core.positions.rotary_pairs"),
    (3, "shift-test"): ("core.positions.shift_invariance",),
    (3, "reorder"): ("core.positions.reorder_experiment",),
    (4, "qkv"): ("core.glassbox.attention_step",),
    (4, "scores"): ("core.glassbox.attention_step", "core.glassbox.causal_mask"),
    (4, "pattern"): ("core.glassbox.attention_step", "core.glassbox.causal_mask"),
    (4, "head-output"): ("core.glassbox.attention_step", "core.glassbox.concatenate_heads"),
    (4, "by-hand"): ("core.attention.worked_query_row",),
    (4, "head-roles"): ("core.attention.head_scores",),
    (4, "induction"): ("core.induction.induction_test", "core.induction.find_circuit", "core.induction.token_losses",
                       "core.induction.copyable_positions"),
    (4, "induction-growth"): ("core.induction.training_progress", "core.induction.induction_test"),
    (4, "head-groups"): ("core.glassbox.share_kv_heads",),
    (4, "kv-cache"): ("core.attention.kv_cache_bytes_per_token",),
    (4, "ablation"): ("core.glassbox.attention_step",),
    (5, "layer-norm"): ("core.glassbox.norm",),
    (5, "rms-vs-layer-norm"): ("core.residual.layer_norm_of", "core.residual.rms_norm_of"),
    (5, "mlp-pre-post"): ("core.glassbox.mlp_step",),
    (5, "gelu"): ("core.glassbox.mlp_step",),
    (5, "swiglu"): ("core.glassbox.mlp_step", "core.residual.gate_parts"),
    (5, "mlp-out"): ("core.glassbox.mlp_step",),
    (5, "neuron"): ("core.residual.neuron_output_effects",),
    (5, "residual-norms"): ("core.glassbox.block_step", "core.residual.residual_norms"),
    (5, "block-wiring"): ("core.glassbox.block_step",),
    (5, "logit-contributions"): ("core.residual.direct_logit", "core.residual.direct_logit_contributions"),
    (5, "ablation"): ("core.glassbox.mlp_step",),
    (6, "candidates"): ("core.glassbox.run_trace",),
    (6, "temperature"): ("core.sampling.log_softmax_with_temperature", "core.sampling.entropy_bits"),
    (6, "sweep"): ("core.sampling.temperature_sweep",),
    (6, "cuts"): ("core.sampling.top_k_keep", "core.sampling.top_p_keep", "core.sampling.renormalise"),
    (6, "funnel"): ("core.sampling.funnel", "core.sampling.pick"),
    (6, "generate"): ("core.sampling.generate",),
    (6, "journey"): ("core.sampling.journey_flows",),
    (6, "logit-lens"): ("core.sampling.logit_lens",),
    (7, "tokenizer"): ("core.tokenization.train_byte_level_bpe",),
    (7, "live"): ("core.training.Trainer.step", "core.training.learning_rate_at"),
    (7, "frozen-step"): ("core.backprop_step.frozen_step",),
}


def function_source(dotted: str) -> str:
    """The source of `module.function` (or `module.Class.method`), as it is on disk now."""
    parts = dotted.split(".")
    for split in range(len(parts) - 1, 0, -1):  # the longest prefix that is a module
        try:
            found = importlib.import_module(".".join(parts[:split]))
        except ModuleNotFoundError:
            continue
        for name in parts[split:]:
            found = getattr(found, name)
        return inspect.getsource(found)
    raise ModuleNotFoundError(dotted)


def figure_code(lesson: int, slot: str) -> list[tuple[str, str]]:
    """(where, source) for each function behind a figure; empty when none is listed."""
    return [(dotted, function_source(dotted)) for dotted in FIGURE_CODE.get((lesson, slot), ())]
