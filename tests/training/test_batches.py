from __future__ import annotations

import pytest
import torch

import optuna_sm2
from optuna_sm2 import PreloadedBatches


def _data(n: int = 23, seed: int = 0) -> PreloadedBatches:
    inputs = torch.arange(n, dtype=torch.float32).unsqueeze(1).repeat(1, 3)
    return PreloadedBatches(inputs, torch.arange(n), seed=seed)


def _epoch(data: PreloadedBatches, batch_size: int, **kwargs: object) -> list[int]:
    order: list[int] = []
    for x, y in data.batches(batch_size, **kwargs):  # type: ignore[arg-type]
        assert torch.equal(x[:, 0].long(), y)  # inputs and targets stay paired
        order += y.tolist()
    return order


def test_exported() -> None:
    assert "PreloadedBatches" in optuna_sm2.__all__


@pytest.mark.parametrize("batch_size", [1, 4, 5, 23])
def test_every_sample_exactly_once_per_epoch(batch_size: int) -> None:
    data = _data()
    for _ in range(3):
        assert sorted(_epoch(data, batch_size)) == list(range(23))


def test_reshuffled_each_epoch_and_reproducible_by_seed() -> None:
    a, b, c = _data(seed=7), _data(seed=7), _data(seed=8)
    epochs_a = [_epoch(a, 5) for _ in range(3)]
    epochs_b = [_epoch(b, 5) for _ in range(3)]
    assert epochs_a == epochs_b
    assert epochs_a[0] != epochs_a[1] != epochs_a[2]
    assert _epoch(c, 5) != epochs_a[0]


def test_no_shuffle_keeps_order_and_generator() -> None:
    a, b = _data(seed=3), _data(seed=3)
    assert _epoch(a, 4, shuffle=False) == list(range(23))
    assert _epoch(a, 4, shuffle=False, fraction=0.5) == list(range(12))
    assert _epoch(a, 4) == _epoch(b, 4)


@pytest.mark.parametrize(
    ("n", "fraction", "expected"),
    [(23, 1.0, 23), (23, 0.25, 6), (20, 0.25, 5), (30, 0.1, 3), (3, 0.01, 1)],
)
def test_fraction_takes_ceil_of_share(n: int, fraction: float, expected: int) -> None:
    data = _data(n)
    order = _epoch(data, 1, fraction=fraction)
    assert len(order) == len(set(order)) == expected
    assert data.n_batches(1, fraction=fraction) == expected


def test_fraction_is_a_fresh_sample_each_epoch() -> None:
    data = _data(100)
    assert set(_epoch(data, 5, fraction=0.25)) != set(_epoch(data, 5, fraction=0.25))


def test_last_partial_batch_and_drop_last() -> None:
    data = _data(23)
    assert [len(y) for _, y in data.batches(5)] == [5, 5, 5, 5, 3]
    assert [len(y) for _, y in data.batches(5, drop_last=True)] == [5, 5, 5, 5]
    assert data.n_batches(5) == 5
    assert data.n_batches(5, drop_last=True) == 4
    assert [len(y) for _, y in data.batches(4, fraction=0.25)] == [4, 2]
    assert data.n_batches(4, 0.25, True) == 1
    assert [len(y) for _, y in data.batches(23)] == [23]


def test_data_moved_once_and_batches_on_device() -> None:
    data = PreloadedBatches(torch.zeros(4, 2), torch.zeros(4), device="cpu")
    assert data.device == torch.device("cpu")
    assert len(data) == 4
    x, y = next(data.batches(2))
    assert x.device == y.device == data.device
    assert x.shape == (2, 2)


def test_arguments_checked_at_call_not_at_first_batch() -> None:
    data = _data()
    with pytest.raises(ValueError, match="batch_size"):
        data.batches(0)


@pytest.mark.parametrize(
    ("inputs", "targets", "match"),
    [
        (torch.zeros(3, 2), torch.zeros(4), "as many samples, got 3 and 4"),
        (torch.zeros(0, 2), torch.zeros(0), "no samples"),
        ([[0.0], [1.0]], torch.zeros(2), "`inputs` must be a torch.Tensor, got list"),
        (torch.zeros(2), None, "`targets` must be a torch.Tensor"),
        (torch.tensor(1.0), torch.zeros(1), "0-d"),
    ],
)
def test_construction_errors(inputs: object, targets: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PreloadedBatches(inputs, targets)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"batch_size": 0}, "integer >= 1, got 0"),
        ({"batch_size": 2.5}, "integer >= 1"),
        ({"batch_size": 24}, r"23 samples; accepted range 1 <= batch_size <= 23"),
        ({"batch_size": 7, "fraction": 0.25}, r"6 of the 23 samples .*<= batch_size <= 6"),
        ({"batch_size": 1, "fraction": 0.0}, r"\(0, 1\], got 0.0"),
        ({"batch_size": 1, "fraction": 1.5}, r"\(0, 1\]"),
        ({"batch_size": 1, "fraction": float("nan")}, r"\(0, 1\]"),
        ({"batch_size": 1, "fraction": "half"}, r"\(0, 1\]"),
    ],
)
def test_batch_errors(kwargs: dict[str, object], match: str) -> None:
    data = _data()
    with pytest.raises(ValueError, match=match):
        data.batches(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=match):
        data.n_batches(**kwargs)  # type: ignore[arg-type]
