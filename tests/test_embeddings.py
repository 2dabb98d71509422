"""The Embeddings lesson's math."""
from __future__ import annotations

import pytest
import torch

from core import embeddings
from core.glassbox import run_trace
from tests.conftest import random_gpt2


def test_lookup_is_row_selection():
    model = random_gpt2(vocab_size=40)
    trace = run_trace(model, [5, 0, 39, 5])
    matrix = embeddings.embedding_matrix(model)
    assert torch.equal(trace["embed.token"], matrix[[5, 0, 39, 5]])


def test_cosine_matrix_and_neighbours_against_direct_computation():
    matrix = torch.randn(50, 16, generator=torch.Generator().manual_seed(0))
    cos = embeddings.cosine_matrix(matrix)
    torch.testing.assert_close(torch.diag(cos), torch.ones(50))
    assert float(cos[3, 7]) == pytest.approx(float(matrix[3] @ matrix[7] / (matrix[3].norm() * matrix[7].norm())),
                                             abs=1e-6)
    neighbours = embeddings.nearest_neighbours(matrix, 3, k=5)
    direct = sorted(((float(cos[3, j]), j) for j in range(50) if j != 3), reverse=True)[:5]
    assert [i for i, _ in neighbours] == [j for _, j in direct]
    assert [c for _, c in neighbours] == pytest.approx([c for c, _ in direct], abs=1e-6)
    assert embeddings.cosine(matrix, 3, 7) == pytest.approx(float(cos[3, 7]), abs=1e-6)


def test_pca_finds_the_planted_directions():
    generator = torch.Generator().manual_seed(1)
    base = torch.randn(300, 2, generator=generator) * torch.tensor([10.0, 5.0])  # two strong directions
    vectors = torch.cat([base, 0.01 * torch.randn(300, 6, generator=generator)], dim=1)  # [300, 8]
    vocabulary = embeddings.vocabulary_map(vectors, [], seen_ids=None, count=300)
    coords, explained = vocabulary.coords, vocabulary.explained
    assert vocabulary.ids == list(range(300)) and vocabulary.never_ids == []
    assert coords.shape == (300, 2)
    assert explained[0] > explained[1] and sum(explained) > 0.99
    correlation = torch.corrcoef(torch.stack([coords[:, 0], base[:, 0]]))[0, 1]
    assert abs(float(correlation)) > 0.99  # direction 1 is the planted strongest axis (up to sign)


def test_vocabulary_sample_adds_the_prompts_tokens_once():
    sample = embeddings.vocabulary_sample(1000, [5, 300, 5], count=100)
    assert sample[:100] == list(range(256, 356)) and sample[100:] == [5]
    assert embeddings.vocabulary_sample(120, [], count=100) == list(range(100))


def test_the_map_is_fitted_on_the_tokens_seen_in_training_and_projects_the_others_apart():
    generator = torch.Generator().manual_seed(2)
    matrix = torch.randn(20, 6, generator=generator)  # [vocab, d_model]
    seen = [2, 3, 5, 7, 11, 13]
    vocabulary = embeddings.vocabulary_map(matrix, prompt_ids=[4, 5], seen_ids=seen)
    assert vocabulary.ids == seen + [4] and vocabulary.never_ids == [i for i in range(20) if i not in seen]
    centred = matrix[vocabulary.ids] - matrix[vocabulary.ids].mean(dim=0)
    directions, _ = embeddings.principal_directions(centred)
    torch.testing.assert_close(vocabulary.never_coords,
                               (matrix[vocabulary.never_ids] - matrix[vocabulary.ids].mean(dim=0)) @ directions.T)


def test_mean_pairwise_cosine_leaves_each_vector_with_itself_out():
    vectors = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    expected = (0.0 + 2 ** -0.5 + 2 ** -0.5) / 3  # the three pairs
    assert embeddings.mean_pairwise_cosine(vectors) == pytest.approx(expected)


def test_lesson_2_quotes_the_tokens_the_course_model_never_saw(bundled):
    """The numbers of lesson 2's paragraph on never-seen tokens, measured on the course model: its
    training.json's token list is the training text's (the full check regenerates all 40,000
    stories: `python -m core.build_course_model --record-seen-tokens`; here the first 1,500)."""
    from core.corpus import generate_stories
    from core.tokenization import encode_corpus
    from tests.conftest import lesson_text, quoted

    seen = bundled.seen_token_ids
    sample = set(encode_corpus(bundled.tokenizer, [s.text for s in generate_stories(1500, 1)]).tolist())
    assert sample <= set(seen)
    matrix = embeddings.embedding_matrix(bundled.model)
    vocab = matrix.shape[0]
    never = sorted(set(range(vocab)) - set(seen))
    single = [i for i in never if len(bundled.tokenizer.convert_ids_to_tokens(i)) == 1]
    text = lesson_text("02_embeddings.md")
    used, total, bytes_, merges, never_cos, seen_cos, longer = quoted(
        r"uses (\d+) of its ([\d,]+) tokens.*?other \d+: (\d+) of the 256 single bytes.*?and (\d+) merges"
        r".*?average cosine similarity of ([\d.]+) \(to three decimals\), against ([\d.]+) among.*?([\d.]+) times as long", text)
    assert (int(used), int(total.replace(",", "")), int(bytes_), int(merges)) == (len(seen), vocab, len(single),
                                                                                  len(never) - len(single))
    assert f"{embeddings.mean_pairwise_cosine(matrix[never]):.3f}" == never_cos
    assert f"{embeddings.mean_pairwise_cosine(matrix[seen]):.2f}" == seen_cos
    assert f"{float(matrix[never].norm(dim=-1).mean() / matrix[seen].norm(dim=-1).mean()):.1f}" == longer
