"""Tiny random models of every family the glass box reads, each weight perturbed (never the network).

A fresh model's norms are exactly γ = 1, β = 0 and many biases exactly 0, which would hide a
mistake in how they are read; every parameter here gets noise. Built once per test session.
"""
from __future__ import annotations

import functools

import torch
import transformers as tf

D_MODEL, N_HEAD, N_LAYER, N_CTX = 32, 4, 2, 32
COMMON_LLAMA = dict(hidden_size=D_MODEL, intermediate_size=48, num_hidden_layers=N_LAYER, num_attention_heads=N_HEAD,
                    max_position_embeddings=N_CTX)

# name -> (config class, model class, config arguments)
VARIANTS = {
    "gpt2": (tf.GPT2Config, tf.GPT2LMHeadModel, dict(n_layer=N_LAYER, n_head=N_HEAD, n_embd=D_MODEL, n_positions=N_CTX)),
    "openai-gpt": (tf.OpenAIGPTConfig, tf.OpenAIGPTLMHeadModel,
                   dict(n_layer=N_LAYER, n_head=N_HEAD, n_embd=D_MODEL, n_positions=N_CTX)),
    "gpt-neo-local3": (tf.GPTNeoConfig, tf.GPTNeoForCausalLM,
                       dict(num_layers=N_LAYER, attention_types=[[["global", "local"], N_LAYER // 2]], hidden_size=D_MODEL,
                            num_heads=N_HEAD, window_size=3, max_position_embeddings=N_CTX)),
    "gptj-rotary-quarter": (tf.GPTJConfig, tf.GPTJForCausalLM,
                            dict(n_layer=N_LAYER, n_head=N_HEAD, n_embd=2 * D_MODEL, rotary_dim=4, n_positions=N_CTX)),
    "gptj-rotary-all": (tf.GPTJConfig, tf.GPTJForCausalLM,
                        dict(n_layer=N_LAYER, n_head=N_HEAD, n_embd=D_MODEL, rotary_dim=D_MODEL // N_HEAD,
                             n_positions=N_CTX)),
    "neox-parallel-quarter": (tf.GPTNeoXConfig, tf.GPTNeoXForCausalLM,
                              dict(num_hidden_layers=N_LAYER, num_attention_heads=N_HEAD, hidden_size=2 * D_MODEL,
                                   intermediate_size=64, rotary_pct=0.25, use_parallel_residual=True,
                                   max_position_embeddings=N_CTX)),
    "neox-sequential-all-tied": (tf.GPTNeoXConfig, tf.GPTNeoXForCausalLM,
                                 dict(num_hidden_layers=N_LAYER, num_attention_heads=N_HEAD, hidden_size=D_MODEL,
                                      intermediate_size=64, rotary_pct=1.0, use_parallel_residual=False,
                                      tie_word_embeddings=True, attention_bias=False, max_position_embeddings=N_CTX)),
    "llama-gqa1": (tf.LlamaConfig, tf.LlamaForCausalLM, dict(**COMMON_LLAMA, num_key_value_heads=1)),
    "llama-gqa2": (tf.LlamaConfig, tf.LlamaForCausalLM, dict(**COMMON_LLAMA, num_key_value_heads=2)),
    "llama-mha-tied-bias": (tf.LlamaConfig, tf.LlamaForCausalLM,
                            dict(**COMMON_LLAMA, num_key_value_heads=N_HEAD, tie_word_embeddings=True,
                                 attention_bias=True, mlp_bias=True)),
    "qwen2-window": (tf.Qwen2Config, tf.Qwen2ForCausalLM,
                     dict(**COMMON_LLAMA, num_key_value_heads=2, use_sliding_window=True, sliding_window=4,
                          max_window_layers=1)),
    "mistral-window": (tf.MistralConfig, tf.MistralForCausalLM,
                       dict(**COMMON_LLAMA, num_key_value_heads=2, sliding_window=5)),
}


@functools.cache
def tiny_model(variant: str, vocab_size: int = 61, seed: int = 0):
    """A tiny random model of `variant` (a key of VARIANTS), every parameter perturbed, in eval mode."""
    config_class, model_class, arguments = VARIANTS[variant]
    torch.manual_seed(seed)
    config = config_class(vocab_size=vocab_size, **arguments)
    config._attn_implementation = "eager"
    model = model_class(config)
    with torch.no_grad():
        for parameter in model.parameters():  # tied matrices appear once
            parameter.add_(torch.randn_like(parameter) * 0.2)
    model.eval()
    model.requires_grad_(False)
    return model
