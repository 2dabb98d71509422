"""The Embeddings lesson's math: similarities, neighbours and a 2-D map of the token embedding
matrix (the model's `wte`, [vocab, d_model]); read-only."""
from __future__ import annotations

import torch


def embedding_matrix(model) -> torch.Tensor:
    from core.architectures import weights_of

    return weights_of(model).W_E  # [vocab, d_model]


def cosine_matrix(vectors: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every pair of rows: [n, n]."""
    unit = torch.nn.functional.normalize(vectors, dim=-1)  # [n, d_model]
    return unit @ unit.T  # [n, n]


def nearest_neighbours(matrix: torch.Tensor, token_id: int, k: int = 10) -> list[tuple[int, float]]:
    """The k tokens of the whole vocabulary whose embeddings have the highest cosine
    similarity with `token_id`'s (the token itself left out)."""
    unit = torch.nn.functional.normalize(matrix, dim=-1)  # [vocab, d_model]
    similarity = unit @ unit[token_id]  # [vocab]
    similarity[token_id] = -2.0  # below any cosine
    top = similarity.topk(k)
    return list(zip(top.indices.tolist(), top.values.tolist()))


def cosine(matrix: torch.Tensor, first: int, second: int) -> float:
    return float(torch.nn.functional.cosine_similarity(matrix[first], matrix[second], dim=0))


def vocabulary_sample(vocab_size: int, extra_ids: list[int], count: int = 400) -> list[int]:
    """The first `count` learned tokens after the 256 single bytes (the earliest merges: common
    pieces), plus `extra_ids` (the prompt's tokens)."""
    first = 256 if vocab_size > 256 + count // 2 else 0
    sample = list(range(first, min(vocab_size, first + count)))
    return sample + [i for i in dict.fromkeys(extra_ids) if i not in set(sample)]


def pca_2d(vectors: torch.Tensor) -> tuple[torch.Tensor, list[float]]:
    """Coordinates on the two directions of largest variance: [n, 2], and the share of the
    total variance each direction keeps."""
    centred = vectors - vectors.mean(dim=0, keepdim=True)  # [n, d_model]
    _, singular, directions = torch.linalg.svd(centred, full_matrices=False)  # directions: [d_model, d_model]
    coords = centred @ directions[:2].T  # [n, 2]
    variance = singular ** 2
    return coords, (variance[:2] / variance.sum()).tolist()
