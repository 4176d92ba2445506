"""What a batch may hold: a tensor, or a tuple, list or dict of them (nested), samples first.

Short functions over such a structure: check it, map a function over its tensors, count its
samples, measure its bytes, move it to a device. The data sources (``_batches.py``,
``_streamed.py``) cut and move batches with them; the phases count the samples a loss saw.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch

Tree = Any
"""A tensor, or a tuple, list or dict of trees (what torch's ``default_collate`` returns)."""

ACCEPTED = "a tensor, or a tuple, list or dict of tensors"


def tensors(tree: Tree) -> Iterator[torch.Tensor]:
    """The tensors of ``tree`` in order (dict values in their order); anything else as-is."""
    if isinstance(tree, torch.Tensor):
        yield tree
    elif isinstance(tree, Mapping):
        for value in tree.values():
            yield from tensors(value)
    elif isinstance(tree, (tuple, list)):
        for value in tree:
            yield from tensors(value)
    else:
        yield tree


def tree_map(fn: Callable[[torch.Tensor], torch.Tensor], tree: Tree) -> Tree:
    """``tree`` with ``fn`` applied to each tensor; tuples, lists and dicts keep their type."""
    if isinstance(tree, torch.Tensor):
        return fn(tree)
    if isinstance(tree, Mapping):
        kind: Any = type(tree)
        return kind({key: tree_map(fn, value) for key, value in tree.items()})
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):  # a namedtuple
        return type(tree)(*(tree_map(fn, value) for value in tree))
    if isinstance(tree, (tuple, list)):
        return type(tree)(tree_map(fn, value) for value in tree)
    return tree


def describe(tree: Tree) -> str:
    """What ``tree`` is, for an error message: ``tensor of shape (4, 3)``, ``dict``, ..."""
    if isinstance(tree, torch.Tensor):
        return f"a tensor of shape {tuple(tree.shape)}"
    return f"a {type(tree).__name__}"


def check_tree(name: str, tree: Tree) -> int:
    """The number of samples of ``tree``: the common first dimension of its tensors.

    Raises:
        ValueError: ``tree`` holds something other than tensors, is an empty container, holds
            a 0-d tensor, or its tensors differ in their first dimension; the message names
            ``name``.
    """
    leaves = list(tensors(tree))
    found: str | None = None
    if not isinstance(tree, (torch.Tensor, tuple, list, Mapping)):
        found = type(tree).__name__
    elif not leaves:
        found = f"an empty {type(tree).__name__}"
    else:
        bad = next((leaf for leaf in leaves if not isinstance(leaf, torch.Tensor)), None)
        if bad is not None:
            found = f"{type(tree).__name__} holding {describe(bad)}"
    if found is not None:
        raise ValueError(f"`{name}` must be a torch.Tensor, got {found} (accepted: {ACCEPTED}).")
    if any(leaf.ndim == 0 for leaf in leaves):
        raise ValueError(f"`{name}` must have a first (sample) dimension, got a 0-d tensor.")
    lengths = {len(leaf) for leaf in leaves}
    if len(lengths) > 1:
        raise ValueError(
            f"`{name}`: its tensors must hold as many samples, got first dimensions "
            f"{sorted(lengths)}."
        )
    return lengths.pop()


def n_samples(tree: Tree) -> int:
    """Samples in a checked ``tree`` (the first dimension of its first tensor)."""
    return len(next(tensors(tree)))


def n_bytes(tree: Tree) -> int:
    """Bytes the tensors of a checked ``tree`` hold."""
    return sum(leaf.element_size() * leaf.nelement() for leaf in tensors(tree))


def to_device(tree: Tree, device: torch.device, *, non_blocking: bool = False) -> Tree:
    """``tree`` with every tensor on ``device`` (no copy for a tensor already there)."""
    if isinstance(tree, torch.Tensor):  # the common case, without the tree walk
        return tree.to(device, non_blocking=non_blocking)
    return tree_map(lambda x: x.to(device, non_blocking=non_blocking), tree)


def take(tree: Tree, index: torch.Tensor) -> Tree:
    """The samples ``index`` of every tensor of ``tree`` (``index_select`` on dimension 0)."""
    if isinstance(tree, torch.Tensor):
        return tree.index_select(0, index)
    return tree_map(lambda x: x.index_select(0, index), tree)


def concat(trees: list[Tree]) -> Tree:
    """Trees of one structure joined along the sample dimension (``torch.cat`` per tensor)."""
    first = trees[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(trees)
    if isinstance(first, Mapping):
        kind: Any = type(first)
        return kind({key: concat([tree[key] for tree in trees]) for key in first})
    if isinstance(first, tuple) and hasattr(first, "_fields"):
        return type(first)(*(concat([tree[i] for tree in trees]) for i in range(len(first))))
    return type(first)(concat([tree[i] for tree in trees]) for i in range(len(first)))
