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
from transformers import (AutoConfig, AutoTokenizer, GPT2Config, GPT2LMHeadModel, GPT2Tokenizer,  # noqa: F401
                          PreTrainedTokenizerFast)
