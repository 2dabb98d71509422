"""The Hugging Face classes the course uses, imported in this one place.

`import transformers` must finish in one thread before another thread touches it: while its
lazy top-level module is half set up, a second thread's `from transformers import
GPT2LMHeadModel` fails with ImportError (two threads on a fresh process: 5 failures in 5
tries). Streamlit runs each student's page in its own thread, so two students opening
lessons together on a freshly started app would hit this. Importing transformers here, at
this module's top, puts Python's own per-module import lock around it: any other thread that
imports `core.hf` meanwhile waits until the import is complete, and after that the lazy
lookups are safe from any thread.
"""
from transformers import (AutoConfig, AutoModelForCausalLM, AutoTokenizer, GPT2Config, GPT2LMHeadModel, GPT2Tokenizer,
                          LlamaConfig, LlamaForCausalLM,  # noqa: F401
                          PreTrainedTokenizerFast)

import threading  # noqa: E402

# Building or loading models is not thread-safe in transformers 5.23: two threads loading the
# same folder at once both got an lm_head that was *not* tied to the embedding (random values,
# reported only as a "missing key"), in 5 runs of 5. Loading swaps process-wide init contexts
# while it runs, so every model construction here (loading, counting parameters on the meta
# device, a new model to train) holds this lock.
MODEL_BUILD_LOCK = threading.RLock()

