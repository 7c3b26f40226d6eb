"""The plan: global image index -> label, cut into fixed chunks, chunks dealt to shards.

Image i is always generator(latents(seed, [i]), label_i), so the plan alone fixes every image;
chunks are the unit of resume and sharding, and shard k of n takes a contiguous run of chunks.
"""

from __future__ import annotations

import numpy as np


def plan_labels(classes: list[int], counts: list[int]) -> np.ndarray:
    """int64 label per global index, classes interleaved as evenly as their counts allow.

    The j-th image of class k sits at key (j + 1/2) / count_k; sorting the keys (ties in class
    order) spreads every class over the whole range, so any prefix or chunk is near the target
    mix. With equal counts this is exactly round-robin: label of i = classes[i % len(classes)].
    """
    keys, order, labels = [], [], []
    for pos, (label, count) in enumerate(zip(classes, counts, strict=True)):
        if count <= 0:
            continue
        keys.append((2 * np.arange(count, dtype=np.float64) + 1) / (2 * count))
        order.append(np.full(count, pos, np.int64))
        labels.append(np.full(count, label, np.int64))
    if not keys:
        return np.zeros(0, np.int64)
    key, pos = np.concatenate(keys), np.concatenate(order)
    return np.concatenate(labels)[np.lexsort((pos, key))]


def largest_remainder(weights: list[float], total: int) -> list[int]:
    """Integer counts summing to `total`, proportional to `weights` (Hamilton's method, ties to the first)."""
    s = float(sum(weights))
    quotas = [total * w / s for w in weights]
    counts = [int(q) for q in quotas]
    rest = total - sum(counts)
    by_fraction = sorted(range(len(weights)), key=lambda k: (-(quotas[k] - counts[k]), k))
    for k in by_fraction[:rest]:
        counts[k] += 1
    return counts


def num_chunks(total: int, chunk_size: int) -> int:
    return -(-total // chunk_size)


def chunk_range(chunk: int, total: int, chunk_size: int) -> range:
    """Global indices of one chunk."""
    return range(chunk * chunk_size, min(total, (chunk + 1) * chunk_size))


def shard_chunks(n_chunks: int, shard: int, num_shards: int) -> range:
    """Chunk ids of shard `shard` of `num_shards`: contiguous, sizes differ by at most one."""
    return range(shard * n_chunks // num_shards, (shard + 1) * n_chunks // num_shards)
