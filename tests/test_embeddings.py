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
    coords, explained = embeddings.pca_2d(vectors)
    assert coords.shape == (300, 2)
    assert explained[0] > explained[1] and sum(explained) > 0.99
    correlation = torch.corrcoef(torch.stack([coords[:, 0], base[:, 0]]))[0, 1]
    assert abs(float(correlation)) > 0.99  # direction 1 is the planted strongest axis (up to sign)


def test_vocabulary_sample_adds_the_prompts_tokens_once():
    sample = embeddings.vocabulary_sample(1000, [5, 300, 5], count=100)
    assert sample[:100] == list(range(256, 356)) and sample[100:] == [5]
    assert embeddings.vocabulary_sample(120, [], count=100) == list(range(100))
