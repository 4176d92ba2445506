"""SM2Objective on Datasets: preloaded within the budget or streamed, any input structure, the
metric's validation form, and one clear error for each misuse before anything is stored."""

from __future__ import annotations

import os

import optuna
import pytest
import torch
from optuna.trial import TrialState
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset

from optuna_sm2 import SM2Objective, attrs
from optuna_sm2.energy import SimulatedMeter
from optuna_sm2.training import ValidBatches, _batches, _data
from optuna_sm2.training._data import ObjectiveData, check_data
from optuna_sm2.training._streamed import StreamedBatches
from tests.support.tiny import accuracy, tiny_data

CPU = torch.device("cpu")


class Pairs(Dataset[tuple[object, object]]):
    """A map-style Dataset over tensors, its items built by ``item(x, y)``."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, item=lambda x, y: (x, y)) -> None:
        self.x, self.y, self.item = x, y, item

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[object, object]:
        return self.item(self.x[i], self.y[i])


def _accuracy_of_batches(model: nn.Module, batches: ValidBatches) -> float:
    right = total = 0
    for inputs, targets in batches:
        right += int((model(inputs).argmax(1) == targets).sum())
        total += len(targets)
    return right / total


def _objective(train: object, valid: object, **kwargs: object) -> SM2Objective:
    options: dict[str, object] = {
        "batch_sizes": (8, 16),
        "n_lrs": 6,
        "epochs_per_rung": 1,
        "final_epochs": 1,
        "meter": SimulatedMeter(power_w=50.0),
    }
    options.update(kwargs)
    return SM2Objective(
        lambda trial: nn.Linear(4, 2),
        train,
        valid,
        nn.functional.cross_entropy,
        _accuracy_of_batches,
        **options,  # type: ignore[arg-type]
    )


def _datasets() -> tuple[TensorDataset, TensorDataset]:
    (x, y), (vx, vy) = tiny_data()
    return TensorDataset(x, y), TensorDataset(vx, vy)


@pytest.mark.parametrize(("budget", "preloaded"), [(None, True), (0, False)])
def test_a_dataset_is_preloaded_within_the_budget_else_streamed(
    budget: int | None, preloaded: bool
) -> None:
    train, valid = _datasets()
    objective = _objective(train, valid, preload_budget_bytes=budget)
    assert objective.preloaded == {"train_data": preloaded, "valid_data": preloaded}
    study = optuna.create_study(direction="maximize", pruner=objective.make_pruner())
    study.optimize(objective, n_trials=2)
    for trial in study.trials:
        assert trial.state in (TrialState.COMPLETE, TrialState.PRUNED)
        assert trial.user_attrs[attrs.ENERGY_TOTAL_J] > 0
        assert 0.0 <= trial.intermediate_values[0] <= 1.0


def test_the_budget_is_shared_training_set_first() -> None:
    train, valid = _datasets()
    train_bytes = check_data("train_data", train).nbytes
    assert train_bytes == 72 * (4 * 4 + 8)  # float32 inputs of 4, int64 targets
    objective = _objective(train, valid, preload_budget_bytes=train_bytes)
    assert objective.preloaded == {"train_data": True, "valid_data": False}
    objective = _objective(train, valid, preload_budget_bytes=train_bytes - 1)
    assert objective.preloaded == {"train_data": False, "valid_data": True}


def test_preloaded_and_streamed_epochs_are_the_same_batches() -> None:
    (x, y), _ = tiny_data()
    preloaded = _batches.PreloadedBatches(x, y, seed=5)
    streamed = StreamedBatches(TensorDataset(x, y), device=CPU, seed=5)
    for kwargs in ({}, {"fraction": 0.25}, {"drop_last": True}, {"shuffle": False}):
        a, b = list(preloaded.batches(10, **kwargs)), list(streamed.batches(10, **kwargs))
        counted = {k: v for k, v in kwargs.items() if k != "shuffle"}
        assert len(a) == len(b) == streamed.n_batches(10, **counted)
        for (xa, ya), (xb, yb) in zip(a, b, strict=True):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_streaming_draws_nothing_from_the_global_random_stream() -> None:
    (x, y), _ = tiny_data()
    streamed = StreamedBatches(TensorDataset(x, y), device=CPU, seed=0)
    torch.manual_seed(1)
    list(streamed.batches(8))
    after_streaming = torch.rand(1)
    torch.manual_seed(1)
    assert torch.equal(torch.rand(1), after_streaming)


def test_streaming_with_worker_processes() -> None:
    (x, y), _ = tiny_data()
    streamed = StreamedBatches(TensorDataset(x, y), device=CPU, seed=3, num_workers=1)
    seen = torch.cat([targets for _, targets in streamed.batches(16, fraction=0.5)])
    assert len(seen) == 36
    preloaded = _batches.PreloadedBatches(x, y, seed=3)
    assert torch.equal(seen, torch.cat([t for _, t in preloaded.batches(16, fraction=0.5)]))


class TwoInputs(nn.Module):
    """A model of a dict of inputs (``features`` and ``scale``)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 2)

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.linear(inputs["features"] * inputs["scale"])


@pytest.mark.parametrize("budget", [None, 0])
@pytest.mark.parametrize("form", ["dict", "tuple", "number target"])
def test_items_with_dict_or_tuple_inputs_and_number_targets(form: str, budget: int | None) -> None:
    (x, y), (vx, vy) = tiny_data()
    if form == "dict":

        def item(a: torch.Tensor, b: torch.Tensor) -> tuple[object, object]:
            return {"features": a, "scale": torch.ones(1)}, b

        model: nn.Module = TwoInputs()
    elif form == "tuple":

        def item(a: torch.Tensor, b: torch.Tensor) -> tuple[object, object]:
            return (a[:2], a[2:]), b

        class Halves(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.linear = nn.Linear(4, 2)

            def forward(self, halves: list[torch.Tensor]) -> torch.Tensor:
                return self.linear(torch.cat(halves, dim=1))

        model = Halves()
    else:

        def item(a: torch.Tensor, b: torch.Tensor) -> tuple[object, object]:
            return a, int(b)  # what torchvision's datasets give

        model = nn.Linear(4, 2)

    objective = SM2Objective(
        lambda trial: model,
        Pairs(x, y, item),
        Pairs(vx, vy, item),
        nn.functional.cross_entropy,
        _accuracy_of_batches,
        batch_sizes=(8, 16),
        n_lrs=6,
        epochs_per_rung=1,
        final_epochs=0,
        meter=SimulatedMeter(power_w=50.0),
        preload_budget_bytes=budget,
    )
    assert objective.preloaded["train_data"] is (budget is None)
    study = optuna.create_study(direction="maximize", pruner=objective.make_pruner())
    study.optimize(objective, n_trials=1)
    assert study.trials[0].state == TrialState.COMPLETE


def test_metric_receives_batches_of_a_dataset_and_the_pair_of_tensors() -> None:
    received: list[object] = []

    def metric(model: nn.Module, data: object) -> float:
        received.append(data)
        if isinstance(data, ValidBatches):
            return _accuracy_of_batches(model, data)
        return accuracy(model, data)

    (x, y), (vx, vy) = tiny_data()
    for valid, budget in (
        ((vx, vy), None),
        (TensorDataset(vx, vy), None),
        (TensorDataset(vx, vy), 0),
    ):
        received.clear()
        objective = SM2Objective(
            lambda trial: nn.Linear(4, 2),
            (x, y),
            valid,
            nn.functional.cross_entropy,
            metric,
            batch_sizes=(8,),
            n_lrs=6,
            epochs_per_rung=1,
            final_epochs=0,
            meter=SimulatedMeter(power_w=50.0),
            preload_budget_bytes=budget,
            valid_batch_size=5,
        )
        study = optuna.create_study(direction="maximize", pruner=objective.make_pruner())
        study.optimize(objective, n_trials=1)
        if isinstance(valid, tuple):
            assert all(isinstance(d, tuple) and d[0].shape == vx.shape for d in received)
        else:
            assert all(isinstance(d, ValidBatches) for d in received)
            batches = list(received[0])  # type: ignore[call-overload]
            assert [len(t) for _, t in batches] == [5, 5, 5, 5, 4]
            assert torch.equal(torch.cat([t for _, t in batches]), vy)  # in order, all of it


def test_valid_batch_size_defaults_to_the_largest_batch_size() -> None:
    train, valid = _datasets()
    data = _objective(train, valid, batch_sizes=(4, 12))._loop._data
    assert isinstance(data.valid, ValidBatches) and data.valid.batch_size == 12


class NoLength(IterableDataset[tuple[torch.Tensor, torch.Tensor]]):
    def __iter__(self):  # type: ignore[no-untyped-def]
        yield torch.zeros(4), torch.tensor(0)


X, Y = tiny_data()[0]
BAD_DATA = {
    "a DataLoader": (DataLoader(TensorDataset(X, Y), batch_size=8), r"pass its dataset instead"),
    "an iterable Dataset": (NoLength(), r"iterable-style Dataset .* map-style"),
    "length 0": (TensorDataset(X[:0], Y[:0]), r"Dataset of length 0"),
    "items not pairs": (TensorDataset(X), r"items of a Dataset must be pairs"),
    "items of three": (TensorDataset(X, Y, Y), r"items of a Dataset must be pairs"),
    "string targets": (Pairs(X, Y, lambda a, b: (a, "cat")), r"cannot be collated|torch.Tensor"),
    "ragged inputs": (
        Pairs(X, Y, lambda a, b: (a[: 1 + int(b)], b)),
        r"cannot be collated .* pad variable-length samples",
    ),
    "a list of tensors": ([X, Y, Y], r"pair \(inputs, targets\) .* got a list"),
    "a pair with a string": ((X, "y"), r"`train_data`: `targets` must be a torch.Tensor, got str"),
    "an empty pair": ((X[:0], Y[:0]), r"holds no samples"),
}


@pytest.mark.parametrize("case", list(BAD_DATA))
def test_bad_training_data_is_refused_naming_it_before_anything_is_stored(case: str) -> None:
    data, match = BAD_DATA[case]
    with pytest.raises(ValueError, match=r"`train_data") as caught:
        _objective(data, _datasets()[1])
    assert len(caught.value.args) == 1
    assert caught.match(match)


def test_a_dataloader_as_validation_data_is_refused_too() -> None:
    loader = DataLoader(_datasets()[1], batch_size=8)
    with pytest.raises(ValueError, match=r"`valid_data` is a torch DataLoader.*valid_data=loader"):
        _objective(_datasets()[0], loader)


def test_a_batch_size_larger_than_the_dataset_is_refused() -> None:
    with pytest.raises(ValueError, match=r"`batch_sizes`.*batch size 100 .*\[1, 72\]"):
        _objective(*_datasets(), batch_sizes=(8, 100))


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"preload_budget_bytes": -1}, "preload_budget_bytes"),
        ({"preload_budget_bytes": 1.5}, "preload_budget_bytes"),
        ({"preload_budget_bytes": True}, "preload_budget_bytes"),
        ({"num_workers": -1}, "num_workers"),
        ({"num_workers": None}, "num_workers"),
        ({"pin_memory": 1}, "pin_memory"),
        ({"valid_batch_size": 0}, "valid_batch_size"),
        ({"valid_batch_size": 8.0}, "valid_batch_size"),
    ],
)
def test_bad_loader_options_are_refused_naming_them(kwargs: dict[str, object], named: str) -> None:
    with pytest.raises(ValueError, match=f"`{named}`"):
        _objective(*_datasets(), **kwargs)


def test_default_budget_is_a_quarter_of_the_machines_memory_on_the_cpu() -> None:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert _data.default_preload_budget(CPU) == memory // 4


def test_preloaded_dataset_matches_the_collated_items() -> None:
    (x, y), _ = tiny_data()
    item = lambda a, b: ({"features": a, "scale": torch.ones(1)}, int(b))  # noqa: E731
    data = ObjectiveData(
        check_data("train_data", Pairs(x, y, item)),
        check_data("valid_data", (x, y)),
        device=CPU,
    )
    assert data.preloaded["train_data"]
    inputs, targets = next(data.for_trial(0).batches(len(y), shuffle=False))
    assert torch.equal(inputs["features"], x) and torch.equal(targets, y)
    assert inputs["scale"].shape == (len(y), 1)
