"""The Embeddings lesson's math: similarities, neighbours and a 2-D map of the token embedding
matrix (the model's `wte`, [vocab, d_model]); read-only."""
from __future__ import annotations

from dataclasses import dataclass

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


@dataclass
class VocabularyMap:
    """Token embeddings drawn on the two directions of largest variance of the tokens the model
    was trained on; the tokens it never saw as input projected on the same two directions."""
    ids: list[int]  # the tokens the map is fitted on: seen in training (or a sample), and the prompt's
    coords: torch.Tensor  # [len(ids), 2]
    explained: list[float]  # share of the variance of `ids`' embeddings each direction keeps
    never_ids: list[int]  # the tokens never in the training text (empty when that is not known)
    never_coords: torch.Tensor  # [len(never_ids), 2]


def vocabulary_map(matrix: torch.Tensor, prompt_ids: list[int], seen_ids: list[int] | None,
                   count: int = 400) -> VocabularyMap:
    """With `seen_ids` (the training text's tokens) the map is fitted on up to `count` of them and
    the prompt's tokens, and every never-seen token is projected apart; without, on
    `vocabulary_sample`. Never-seen tokens are fitted on by no one: their rows moved only as the
    output layer pushed them (tied weights), all alike, and would fill the map with one blob."""
    vocab = matrix.shape[0]
    if seen_ids is None:
        ids, never = vocabulary_sample(vocab, prompt_ids, count), []
    else:
        seen = [i for i in seen_ids if i < vocab][:count]
        ids = seen + [i for i in dict.fromkeys(prompt_ids) if i not in set(seen)]
        never = sorted(set(range(vocab)) - set(seen_ids))
    mean = matrix[ids].mean(dim=0, keepdim=True)  # [1, d_model]
    directions, explained = principal_directions(matrix[ids] - mean)  # [2, d_model]
    return VocabularyMap(ids, (matrix[ids] - mean) @ directions.T, explained, never,
                         (matrix[never] - mean) @ directions.T)


def principal_directions(centred: torch.Tensor) -> tuple[torch.Tensor, list[float]]:
    """The two directions of largest variance of centred rows [n, d_model]: [2, d_model], and the
    share of the total variance each keeps."""
    _, singular, directions = torch.linalg.svd(centred, full_matrices=False)  # directions: [d_model, d_model]
    variance = singular ** 2
    return directions[:2], (variance[:2] / variance.sum()).tolist()


def mean_pairwise_cosine(vectors: torch.Tensor) -> float:
    """The average cosine similarity over all pairs of distinct rows of [n, d_model]."""
    similarity = cosine_matrix(vectors)  # [n, n]
    n = vectors.shape[0]
    return float((similarity.sum() - similarity.diagonal().sum()) / (n * (n - 1)))
