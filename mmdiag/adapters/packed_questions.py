"""Several questions about one image in one sequence: the image + prompt prefix once, each question's remaining
tokens after it, every question blind to the others.

Yes/no scoring asks many questions per image. Running each as its own row repeats the image prefix (hundreds of
tokens) per question; caching the prefix and copying the cache per question still copies it. Packing lays the
prefix once and the question suffixes one after another, with

- position ids that restart after the prefix for every suffix (each suffix sits where it would sit alone), and
- an additive 4D attention mask: prefix tokens attend causally within the prefix; a suffix token attends to the
  whole prefix and causally within its own suffix, never to another suffix.

Under that mask and those positions every suffix token computes exactly what it computes in its own row, so one
forward of ``prefix + k suffixes`` tokens replaces ``k`` forwards of ``prefix + suffix`` tokens: the cost per
image approaches one forward of the image + prompt. Rows of different images are right-padded to one length.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class PackedQuestions:
    """One packed row per image: ``input_ids``/``position_ids`` [rows, T], ``attention_mask`` [rows, 1, T, T]
    (additive: 0 where a query may attend, the dtype's minimum elsewhere), and ``read`` [questions]: the packed
    position whose logits answer each question (its last prompt token), with ``row`` [questions] its packed row."""

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    attention_mask: torch.Tensor
    row: torch.Tensor
    read: torch.Tensor


def common_prefix(ids: torch.Tensor, lengths: torch.Tensor) -> int:
    """Tokens every row of ``ids`` shares from the start, leaving each row at least one token of its own."""
    same = (ids == ids[:1]).all(dim=0).long()
    return min(int(torch.cumprod(same, dim=0).sum()), int(lengths.min()) - 1)


def can_pack(ids: torch.Tensor, lengths: torch.Tensor, groups: list[tuple[int, int, int]]) -> bool:
    """Does every group's common prefix hold all its image tokens (and leave each question a token)?"""
    return all(common_prefix(ids[f : f + c], lengths[f : f + c]) >= max(end, 1) for f, c, end in groups)


def pack_questions(
    ids: torch.Tensor, lengths: torch.Tensor, groups: list[tuple[int, int, int]], pad_id: int, dtype: torch.dtype
) -> PackedQuestions:
    """Pack the right-padded rows ``ids`` ([questions, tokens], real lengths ``lengths``) by ``groups``: (first
    row, count, image end) per image, the rows of one image differing only after their common prefix, which must
    hold every image token (``image end``: one past the last); see :func:`can_pack`."""
    sequences, positions, blocks, reads, rows = [], [], [], [], []
    for row, (first, count, image_end) in enumerate(groups):
        members, member_lengths = ids[first : first + count], lengths[first : first + count]
        shared = common_prefix(members, member_lengths)
        if shared < max(image_end, 1):
            raise ValueError(
                f"questions of one image share {shared} leading tokens, fewer than the {image_end} "
                "image + prompt tokens that must come first"
            )
        pieces, place, block, offset = (
            [members[0, :shared]],
            [torch.arange(shared)],
            [torch.zeros(shared, dtype=torch.long)],
            shared,
        )
        for k in range(count):
            end = int(member_lengths[k])
            pieces.append(members[k, shared:end])
            place.append(torch.arange(shared, end))
            block.append(torch.full((end - shared,), k + 1, dtype=torch.long))
            offset += end - shared
            reads.append(offset - 1)
            rows.append(row)
        sequences.append(torch.cat(pieces))
        positions.append(torch.cat(place))
        blocks.append(torch.cat(block))
    width = max(len(s) for s in sequences)
    n = len(sequences)
    input_ids = torch.full((n, width), pad_id, dtype=ids.dtype)
    position_ids = torch.zeros((n, width), dtype=torch.long)
    block_ids = torch.full((n, width), -1, dtype=torch.long)  # -1: padding
    for i, (seq, pos, blk) in enumerate(zip(sequences, positions, blocks)):
        input_ids[i, : len(seq)], position_ids[i, : len(seq)], block_ids[i, : len(seq)] = seq, pos, blk
    index = torch.arange(width)
    causal = index[None, :] <= index[:, None]  # [query, key]
    query, key = block_ids[:, :, None], block_ids[:, None, :]
    allowed = causal[None] & (key >= 0) & ((key == 0) | (key == query))
    allowed[:, :, 0] |= query[:, :, 0] < 0  # padding queries read the first token: no row without a key
    mask = torch.zeros((n, 1, width, width), dtype=dtype).masked_fill(~allowed[:, None], torch.finfo(dtype).min)
    return PackedQuestions(
        input_ids.to(ids.device),
        position_ids.to(ids.device),
        mask.to(ids.device),
        torch.as_tensor(rows, device=ids.device),
        torch.as_tensor(reads, device=ids.device),
    )
