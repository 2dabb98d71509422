"""Tokenizers, byte symbols and BPE merge steps."""
from __future__ import annotations

import pytest

from core.corpus import generate_stories
from core.tokenization import (bpe_merge_steps, bpe_merges, distinct_words, gpt2_tokenizer, pretokens,
                               prompt_tokens, split_characters, split_words, symbols_to_bytes, to_byte_symbols,
                               train_byte_level_bpe)

HARD_TEXTS = ["The cat sat on the mat.", " leading space", "naïve café 1234567",
              "emoji 🙂👍🏽 and 東京 and שלום עולם", "tabs\tand\nnewlines\r\n", "floccinaucinihilipilification"]


def test_gpt2_tokenizer_gives_gpt2_ids_offline():
    assert gpt2_tokenizer()("The cat sat on the")["input_ids"] == [464, 3797, 3332, 319, 262]
    assert len(gpt2_tokenizer()) == 50257


def test_byte_symbols_round_trip_and_space_marker():
    assert to_byte_symbols(" cat\n") == "ĠcatĊ"
    for text in HARD_TEXTS:
        assert symbols_to_bytes(to_byte_symbols(text)).decode("utf-8") == text


@pytest.mark.parametrize("text", HARD_TEXTS)
def test_merge_steps_reproduce_the_tokenizer(text):
    tokenizer = gpt2_tokenizer()
    merges = bpe_merges(tokenizer)
    expected = [t.symbols for t in prompt_tokens(tokenizer, text)]
    replayed = []
    for piece in pretokens(tokenizer, text):
        steps = bpe_merge_steps(piece, merges)
        assert steps[0].pieces == list(piece) and steps[0].merged is None
        ranks = [step.rank for step in steps[1:]]
        assert ranks == sorted(ranks)  # merges are applied in the order they were learned
        replayed += steps[-1].pieces
    assert replayed == expected


def test_prompt_tokens_decode_back_to_the_prompt():
    tokenizer = gpt2_tokenizer()
    for text in HARD_TEXTS + ["<|endoftext|> typed by a student"]:
        tokens = prompt_tokens(tokenizer, text)
        assert b"".join(symbols_to_bytes(t.symbols) for t in tokens).decode("utf-8") == text
    assert prompt_tokens(tokenizer, "") == []
    # a student typing the special token gets plain text, not the control token
    assert 50256 not in [t.id for t in prompt_tokens(tokenizer, "<|endoftext|>")]


def test_partial_characters_show_their_bytes_in_hexadecimal_as_lesson_1_says():
    """Every piece of an emoji printed as '�' looked alike; the course writes a piece's bytes."""
    from core.figures import token_name
    from core.models import load_model
    from core.tokenization import tokens_text
    from tests.conftest import lesson_text

    tokenizer = gpt2_tokenizer()
    tokens = prompt_tokens(tokenizer, "🙂 and a word")
    pieces = [t for t in tokens if "<0x" in t.text]
    assert len(pieces) > 1 and "".join(t.text for t in pieces) == "".join(f"<0x{b:02X}>" for b in "🙂".encode())
    assert [token_name(tokenizer, t.id) for t in pieces] == [t.text for t in pieces]  # tables and figures too
    assert not any("\ufffd" in token_name(tokenizer, t.id) or "\ufffd" in t.text for t in tokens)
    assert [t.text for t in tokens[len(pieces):]] == [" and", " a", " word"]  # whole characters as they are
    cut = [t.id for t in tokens][1:]  # a stretch that begins inside the emoji (lesson 6 shows prompt tails so)
    assert tokens_text(tokenizer, cut) == "".join(t.text for t in pieces[1:]) + " and a word"
    lesson = " ".join(lesson_text("01_tokenization.md").split())
    for quoted_tokenizer in (load_model("glassbox-stories").tokenizer, tokenizer):  # the lesson's examples: the real splits
        assert " ".join(f"`{t.text}`" for t in prompt_tokens(quoted_tokenizer, "😀")) in lesson
    assert " ".join(f"`{symbol}`" for symbol in to_byte_symbols("😀")) in lesson  # and its byte symbols


def test_character_and_word_splits():
    assert [t.text for t in split_characters("ab c")] == ["a", "b", " ", "c"]
    assert [t.text for t in split_words(" two  words\n")] == ["two", "words"]


def test_distinct_words_keep_order_and_leading_spaces():
    assert distinct_words(gpt2_tokenizer(), "the cat and the cat 42") == ["the", " cat", " and", " the", " 42"]


def test_trained_bpe_covers_any_text_by_byte_fallback():
    texts = [story.text for story in generate_stories(200, seed=5)]
    tokenizer = train_byte_level_bpe(texts, vocab_size=400)
    assert 257 < len(tokenizer) <= 400
    for text in HARD_TEXTS:
        tokens = prompt_tokens(tokenizer, text)
        assert b"".join(symbols_to_bytes(t.symbols) for t in tokens).decode("utf-8") == text
    # a word the stories use often is one token
    assert len(prompt_tokens(tokenizer, " upon")) == 1


def test_trained_bpe_is_deterministic():
    texts = [story.text for story in generate_stories(100, seed=6)]
    first = train_byte_level_bpe(texts, 350)
    second = train_byte_level_bpe(texts, 350)
    assert first.backend_tokenizer.to_str() == second.backend_tokenizer.to_str()


def test_invisible_format_characters_show_by_their_code_point_in_every_label():
    """A family emoji is emoji joined by zero-width joiners, and a right-to-left override would
    reverse the labels after it on screen: both are written out wherever the course names text."""
    from core.figures import plotly_text, token_labels, visible

    assert visible("👩\u200d👧") == "👩⟨U+200D⟩👧"
    assert visible("abc\u202edef") == "abc⟨U+202E⟩def"
    assert plotly_text("\u200f<b>") == "⟨U+200F⟩&lt;b&gt;"
    assert token_labels(["\u202e", "x"]) == ["0 ⟨U+202E⟩", "1 x"]
    assert visible("שלום مرحبا 你好") == "שלום␣مرحبا␣你好"  # letters of any script stay as they are
