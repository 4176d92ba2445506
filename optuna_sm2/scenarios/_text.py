"""The ``text`` scenario: a small Transformer language model (the paper: WikiText-2).

The text is the Python documentation's topic pages that ship with Python itself
(``pydoc_data.topics``, about 465 kB of English), modelled character by character so that a CPU
can train it; the metric is the validation perplexity per character (minimized).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

from optuna_sm2.scenarios._base import Budget, DataPair, Scenario, check_budget

if TYPE_CHECKING:
    import optuna

_BUDGETS = {
    "tiny": Budget("tiny", (16, 32), n_lrs=5, epochs_per_rung=1, final_epochs=1, patience=1),
    "small": Budget(
        "small", (4, 8, 16, 32, 64, 128, 256, 512),
        n_lrs=10, epochs_per_rung=1, final_epochs=4, patience=2,
    ),
    "paper": Budget(
        "paper", (8, 16, 32, 64, 128, 256, 512, 1024), n_lrs=20, epochs_per_rung=5,
        final_epochs=10, patience=3,
    ),
}  # fmt: skip
# (characters used or None for all, sequence length, model width, layers) per budget.
_SIZES: dict[str, tuple[int | None, int, int, int]] = {
    "tiny": (12_000, 32, 32, 1),
    "small": (120_000, 64, 64, 2),
    "paper": (None, 128, 128, 4),
}
VALID_SHARE = 0.1
"""The last tenth of the text is the validation data."""


def load_text() -> str:
    """The topic pages of Python's documentation (``pydoc_data.topics``), joined in key order."""
    try:
        from pydoc_data.topics import topics
    except ImportError as exc:  # pragma: no cover - some distributions strip pydoc_data
        raise ImportError(
            "the 'text' scenario reads pydoc_data.topics, which this Python lacks "
            "(some distributions package it separately)"
        ) from exc
    return "\n\n".join(topics[key] for key in sorted(topics))


def encode(text: str) -> tuple[torch.Tensor, list[str]]:
    """Character ids (int64) and the vocabulary (sorted characters)."""
    vocab = sorted(set(text))
    index = {c: i for i, c in enumerate(vocab)}
    return torch.tensor([index[c] for c in text], dtype=torch.long), vocab


def make_sequences(ids: torch.Tensor, length: int) -> DataPair:
    """Non-overlapping chunks: inputs ``(n, length)`` and the next characters ``(n, length)``."""
    n = (len(ids) - 1) // length
    return ids[: n * length].view(n, length), ids[1 : n * length + 1].view(n, length)


class CharTransformer(nn.Module):
    """A causal pre-norm Transformer encoder over characters with learned positions."""

    mask: torch.Tensor

    def __init__(self, vocab: int, length: int, width: int = 64, layers: int = 2) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.position = nn.Parameter(torch.zeros(length, width))
        layer = nn.TransformerEncoderLayer(
            width, nhead=4, dim_feedforward=2 * width, dropout=0.0, batch_first=True,
            norm_first=True,
        )  # fmt: skip
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(length))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        n = ids.shape[1]
        x = self.embed(ids) + self.position[:n]
        x = self.encoder(x, mask=self.mask[:n, :n], is_causal=True)
        logits: torch.Tensor = self.head(self.norm(x))
        return logits


def sequence_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-character cross-entropy over ``(batch, length, vocab)`` logits."""
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def perplexity(model: nn.Module, data: DataPair) -> float:
    """``exp`` of the mean next-character cross-entropy (1 is perfect; lower is better)."""
    inputs, targets = data
    loss = float(sequence_cross_entropy(model(inputs), targets).item())
    return math.exp(min(loss, 50.0))


def text(budget: str = "small", seed: int = 0) -> Scenario:
    """``pydoc_data.topics`` as characters, a small causal Transformer, perplexity (minimized).

    The CPU budgets use the first characters of the text (training) and the tenth after them
    (validation); ``paper`` uses all of it.
    """
    name = check_budget(budget)
    n_chars, length, width, layers = _SIZES[name]
    ids, vocab = encode(load_text())
    if n_chars is not None:
        ids = ids[: int(n_chars / (1.0 - VALID_SHARE))]
    cut = int(len(ids) * (1.0 - VALID_SHARE))
    train = make_sequences(ids[:cut], length)
    valid = make_sequences(ids[cut:], length)

    def build_model(trial: optuna.trial.Trial | None) -> nn.Module:
        return CharTransformer(len(vocab), length, width, layers)

    return Scenario(
        name="text",
        description=f"Transformer ({layers} layers, width {width}) / Python docs, characters",
        train_data=train,
        valid_data=valid,
        build_model=build_model,
        loss_fn=sequence_cross_entropy,
        metric=perplexity,
        metric_name="perplexity",
        direction="minimize",
        conventional_lr=0.1,
        budget=_BUDGETS[name],
        data_source=(
            f"pydoc_data.topics (ships with Python), {cut} training and {len(ids) - cut} "
            f"validation characters, sequences of {length}"
        ),
    )
