"""``SM2TrainerCallback`` with a real ``transformers.Trainer`` and a tiny BERT built from a
config (nothing downloaded), on the CPU, with SQLite studies in ``tmp_path``."""

from __future__ import annotations

import json
import re
import runpy
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch

transformers = pytest.importorskip("transformers")

from transformers import (  # noqa: E402
    BertConfig,
    BertForSequenceClassification,
    Trainer,
    TrainingArguments,
)

from optuna_sm2 import EnergyTracker, SuccessiveHalvingEnergyPruner, attrs  # noqa: E402
from optuna_sm2.integration import SM2TrainerCallback  # noqa: E402
from tests.support.cli import run_cli  # noqa: E402
from tests.support.meters import StepMeter  # noqa: E402
from tests.support.writes import CountedWrites  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [
    pytest.mark.usefixtures("one_torch_thread"),
    pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning"),
]

WATTS = 10.0
"""Every window of a StepMeter(WATTS) holds WATTS joules."""


@pytest.fixture(autouse=True)
def _quiet() -> Iterator[None]:
    level = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    yield
    transformers.logging.set_verbosity(level)
    optuna.logging.set_verbosity(optuna.logging.INFO)


class Tokens(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    """Sequences of 8 tokens whose class is whether the first token is above 25."""

    def __init__(self, n: int, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(1, 50, (n, 8), generator=generator)
        self.labels = (self.ids[:, 0] > 25).long()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.labels[i]}


def tiny_bert(trial: Any = None) -> BertForSequenceClassification:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
        num_labels=2,
    )
    return BertForSequenceClassification(config)


def accuracy(prediction: Any) -> dict[str, float]:
    return {"accuracy": float((prediction.predictions.argmax(-1) == prediction.label_ids).mean())}


def arguments(tmp_path: Path, **kwargs: Any) -> TrainingArguments:
    settings: dict[str, Any] = {
        "output_dir": str(tmp_path / "out"),
        "eval_strategy": "epoch",
        "save_strategy": "no",
        "num_train_epochs": 3,
        "per_device_train_batch_size": 16,
        "learning_rate": 1e-3,
        "report_to": "none",
        "disable_tqdm": True,
        "logging_strategy": "no",
        "use_cpu": True,
    }
    return TrainingArguments(**{**settings, **kwargs})


def make_trainer(tmp_path: Path, callback: Any, **kwargs: Any) -> Trainer:
    return Trainer(
        model_init=tiny_bert,
        args=arguments(tmp_path, **kwargs),
        train_dataset=Tokens(128, 0),
        eval_dataset=Tokens(64, 1),
        compute_metrics=accuracy,
        callbacks=[callback],
    )


def batch_sizes(trial: optuna.trial.Trial) -> dict[str, Any]:
    sizes = [8, 16, 32, 64]
    return {"per_device_train_batch_size": trial.suggest_categorical("batch_size", sizes)}


def check_energy(study: optuna.Study) -> None:
    """Every trial holds its windows: a train and an eval window per epoch it trained, an
    explore window per exploration, each WATTS joules; and it reported once per epoch."""
    for trial in study.trials:
        user = trial.user_attrs
        epochs = user[attrs.EPOCHS_TRAINED]
        explorations = user.get(attrs.EXPLORATIONS, 0)
        assert user[attrs.ENERGY_TRAIN_J] == pytest.approx(WATTS * epochs)
        assert user[attrs.ENERGY_EVAL_J] == pytest.approx(WATTS * epochs)
        assert user[attrs.ENERGY_TOTAL_J] == pytest.approx(WATTS * (2 * epochs + explorations))
        assert user[attrs.ENERGY_SOURCE] == "simulated"
        assert user[attrs.ENERGY_INVALID_WINDOWS] == 0
        assert user[attrs.ENERGY_PER_EPOCH_J] == pytest.approx(WATTS)
        assert sorted(trial.intermediate_values) == list(range(epochs))  # epochs, not steps


def test_hyperparameter_search_books_energy_counts_rungs_in_epochs_and_prunes(
    tmp_path: Path,
) -> None:
    storage = f"sqlite:///{tmp_path / 'hf.db'}"
    callback = SM2TrainerCallback(metric="accuracy", tracker=EnergyTracker(StepMeter(WATTS)))
    trainer = make_trainer(tmp_path, callback)
    best = trainer.hyperparameter_search(
        hp_space=callback.hp_space(batch_sizes),
        backend="optuna",
        n_trials=4,
        direction="maximize",
        compute_objective=lambda metrics: metrics["eval_accuracy"],
        pruner=SuccessiveHalvingEnergyPruner(rung_steps=[0, 1]),
        sampler=optuna.samplers.BruteForceSampler(seed=0),
        storage=storage,
        study_name="hf",
    )
    study = optuna.load_study(study_name="hf", storage=storage)
    states = [trial.state for trial in study.trials]
    assert len(states) == 4 and optuna.trial.TrialState.PRUNED in states
    assert {trial.params["batch_size"] for trial in study.trials} == {8, 16, 32, 64}
    check_energy(study)
    for trial in study.trials:
        if trial.state == optuna.trial.TrialState.PRUNED:
            assert trial.system_attrs[attrs.PRUNED_AT_EPOCH] == max(trial.intermediate_values)
        else:
            assert trial.user_attrs[attrs.EPOCHS_TRAINED] == 3
            assert trial.value == trial.intermediate_values[2]  # the Trainer's objective
    assert best.objective == study.best_value
    trainer.train()  # the final model, after the search: no trial, nothing written
    assert optuna.load_study(study_name="hf", storage=storage).trials == study.trials
    code, out, err = run_cli(["report", "--storage", storage, "--study", "hf", "--json"])
    assert code == 0, err
    summary = json.loads(out)
    assert summary["total_energy_j"] == pytest.approx(
        sum(trial.user_attrs[attrs.ENERGY_TOTAL_J] for trial in study.trials)
    )


def test_an_objective_that_calls_train_explores_and_prunes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracker = EnergyTracker(StepMeter(WATTS))
    callbacks: list[SM2TrainerCallback] = []

    def objective(trial: optuna.trial.Trial) -> float:
        size = trial.suggest_categorical("batch_size", [8, 16, 32, 64])
        callback = SM2TrainerCallback(
            trial, metric="eval_accuracy", explore=True, n_lrs=5, tracker=tracker
        )
        callbacks.append(callback)
        trainer = make_trainer(
            tmp_path, callback, per_device_train_batch_size=size, lr_scheduler_type="constant"
        )
        trainer.train(trial=trial)
        callback.check_pruned()
        optimizer = trainer.optimizer
        assert optimizer is not None
        assert [group["lr"] for group in optimizer.param_groups] == [callback.stable_lr] * len(
            optimizer.param_groups
        )
        return float(trainer.evaluate()["eval_accuracy"])

    storage = f"sqlite:///{tmp_path / 'own.db'}"
    rdb = optuna.storages.RDBStorage(storage)
    writes = CountedWrites(rdb, monkeypatch)  # no write of a value the trial stores already
    study = optuna.create_study(
        storage=rdb,
        study_name="own",
        direction="maximize",
        sampler=optuna.samplers.BruteForceSampler(seed=0),
        pruner=SuccessiveHalvingEnergyPruner(rung_steps=[0, 1]),
    )
    study.optimize(objective, n_trials=4)
    assert optuna.trial.TrialState.PRUNED in [trial.state for trial in study.trials]
    check_energy(study)
    assert writes.total > 0 and writes.unchanged == []
    for trial, callback in zip(study.trials, callbacks, strict=True):
        user = trial.user_attrs
        epochs = user[attrs.EPOCHS_TRAINED]
        assert user[attrs.EXPLORATIONS] == min(epochs, 3)  # blocks [0], [1], [2]
        assert user[attrs.STABLE_LR] == callback.stable_lr
        assert 1e-5 <= user[attrs.STABLE_LR] <= 1e-1
    code, out, err = run_cli(["report", "--storage", storage, "--study", "own", "--json"])
    assert code == 0, err
    assert json.loads(out)["total_energy_j"] > 0.0


def test_without_exploration_the_trainer_keeps_its_learning_rate(tmp_path: Path) -> None:
    trial = optuna.create_study(direction="maximize").ask()
    callback = SM2TrainerCallback(trial, tracker=EnergyTracker(StepMeter(WATTS)))
    trainer = make_trainer(tmp_path, callback, num_train_epochs=1, lr_scheduler_type="constant")
    trainer.train(trial=trial)
    callback.check_pruned()
    assert trainer.optimizer is not None
    assert trainer.optimizer.param_groups[0]["lr"] == 1e-3
    assert callback.stable_lr is None and attrs.STABLE_LR not in trial.user_attrs
    assert trial.user_attrs[attrs.ENERGY_TOTAL_J] == pytest.approx(2 * WATTS)
    # the default metric is the Trainer's default objective: here the accuracy alone
    evaluated = [entry for entry in trainer.state.log_history if "eval_accuracy" in entry]
    reported = trial.study.trials[0].intermediate_values
    assert reported == {0: pytest.approx(evaluated[0]["eval_accuracy"])}


def test_an_evaluation_before_training_is_neither_booked_nor_reported(tmp_path: Path) -> None:
    trial = optuna.create_study(direction="maximize").ask()
    callback = SM2TrainerCallback(trial, tracker=EnergyTracker(StepMeter(WATTS)))
    trainer = make_trainer(tmp_path, callback, num_train_epochs=2, eval_on_start=True)
    trainer.train(trial=trial)
    assert len([entry for entry in trainer.state.log_history if "eval_loss" in entry]) == 3
    assert list(trial.study.trials[0].intermediate_values) == [0, 1]
    assert trial.user_attrs[attrs.ENERGY_TOTAL_J] == pytest.approx(4 * WATTS)


def test_the_selected_lr_becomes_the_peak_of_the_schedule() -> None:
    from transformers import get_linear_schedule_with_warmup

    from optuna_sm2.integration._transformers import _set_peak_lr

    weights = [torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))]
    optimizer = torch.optim.AdamW([{"params": weights[:1]}, {"params": weights[1:]}], lr=1e-3)
    schedule = get_linear_schedule_with_warmup(optimizer, 4, 20)  # warm-up, then decay
    for _ in range(2):
        optimizer.step()
        schedule.step()
    assert [group["lr"] for group in optimizer.param_groups] == pytest.approx([5e-4] * 2)
    _set_peak_lr(optimizer, schedule, 0.04)
    assert [group["lr"] for group in optimizer.param_groups] == pytest.approx([0.02] * 2)
    for _ in range(2):
        optimizer.step()
        schedule.step()
    assert [group["lr"] for group in optimizer.param_groups] == pytest.approx([0.04] * 2)
    without = torch.optim.SGD(weights, lr=1e-3)
    _set_peak_lr(without, None, 0.04)
    assert without.param_groups[0]["lr"] == 0.04


def test_the_sweep_draws_its_planned_batches_from_the_training_set() -> None:
    from optuna_sm2.integration._transformers import _sweep_batches
    from optuna_sm2.lr import sweep_plan
    from optuna_sm2.training._phases import SweepSettings

    settings = SweepSettings(1e-5, 1e-1, 5, 0.25)
    loader = torch.utils.data.DataLoader(Tokens(40, 0), batch_size=16, shuffle=True)
    state = torch.random.get_rng_state()
    plan, batches = _sweep_batches(loader, settings, seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)  # torch's stream untouched
    assert plan == sweep_plan(len(loader), 1, 0.25, 5)
    assert len(batches) == plan.n_batches > len(loader)  # the set is cycled
    assert all(batch["input_ids"].shape == (16, 8) for batch in batches)
    again = _sweep_batches(loader, settings, seed=3)[1]
    pairs = zip(batches, again, strict=True)
    assert all(torch.equal(a["input_ids"], b["input_ids"]) for a, b in pairs)

    class Stream(torch.utils.data.IterableDataset[dict[str, torch.Tensor]]):
        def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
            return iter(Tokens(40, 0))

    streamed = torch.utils.data.DataLoader(Stream(), batch_size=16)
    with pytest.raises(ValueError, match=r"map-style training set.*pass explore=False"):
        _sweep_batches(streamed, settings, seed=3)


@pytest.mark.parametrize("strategy", ["no", "steps"])
def test_evaluation_not_per_epoch_is_refused_as_the_trainer_is_made(
    tmp_path: Path, strategy: str
) -> None:
    with pytest.raises(ValueError, match=r"TrainingArguments\(eval_strategy='epoch'\)"):
        make_trainer(tmp_path, SM2TrainerCallback(), eval_strategy=strategy, eval_steps=2)


def test_a_missing_trial_is_refused_before_training(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path, SM2TrainerCallback())
    with pytest.raises(ValueError, match=r"SM2TrainerCallback\(trial\).*callback\.hp_space"):
        trainer.train()
    assert trainer.state.global_step == 0


def test_a_study_of_several_objectives_is_refused_before_anything_is_written(
    tmp_path: Path,
) -> None:
    trial = optuna.create_study(directions=["maximize", "minimize"]).ask()
    trainer = make_trainer(tmp_path, SM2TrainerCallback(trial))
    with pytest.raises(ValueError, match="pass one `direction`"):
        trainer.train(trial=trial)
    assert trial.user_attrs == {}


def test_a_bad_argument_is_refused_by_name() -> None:
    for kwargs, name in [
        ({"trial": "trial-0"}, "`trial`"),
        ({"metric": 3}, "`metric`"),
        ({"explore": "yes"}, "`explore`"),
        ({"explore_every": 0}, "explore_every"),
        ({"lr_min": 1.0, "lr_max": 0.1}, "lr_min"),
        ({"tracker": object()}, "`tracker`"),
    ]:
        with pytest.raises(ValueError, match=re.escape(name)):
            SM2TrainerCallback(**kwargs)
    with pytest.raises(ValueError, match="`space`"):
        SM2TrainerCallback().hp_space("learning_rate")  # type: ignore[arg-type]


def test_an_unknown_metric_lists_the_evaluation_metrics(tmp_path: Path) -> None:
    trial = optuna.create_study().ask()
    callback = SM2TrainerCallback(trial, metric="f1", tracker=EnergyTracker(StepMeter(WATTS)))
    trainer = make_trainer(tmp_path, callback, num_train_epochs=1)
    with pytest.raises(ValueError, match=r"`metric`='f1'.*'eval_accuracy'"):
        trainer.train(trial=trial)


@pytest.mark.parametrize("namespace", ["lightning.pytorch", "pytorch_lightning"])
def test_a_lightning_trainer_is_told_which_callback_it_needs(namespace: str) -> None:
    pytest.importorskip(namespace)
    from tests.support.lightning import NAMESPACES, loaders, trainer

    module, classifier = NAMESPACES[namespace]
    callback = SM2TrainerCallback(optuna.create_study().ask())
    fit = trainer(callback, max_epochs=1, namespace=module)
    with pytest.raises(TypeError, match=r"pass optuna_sm2\.integration\.SM2PruningCallback"):
        fit.fit(classifier(lr=0.1), *loaders())
    assert callback.trial is not None and callback.trial.user_attrs == {}


def test_importing_the_integration_loads_neither_torch_nor_transformers() -> None:
    code = (
        "import sys, optuna_sm2, optuna_sm2.integration as i; "
        "assert 'SM2TrainerCallback' in dir(i); "
        "print(sorted(m for m in ('torch', 'transformers', 'accelerate') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# --- the documented examples and the ported script -------------------------------------------

PAGE = ROOT / "docs" / "your-training-code.md"
BLOCKS = re.findall(r"```python\n(.*?)```", PAGE.read_text(encoding="utf-8"), flags=re.S)
HF_BLOCKS = [block for block in BLOCKS if "SM2TrainerCallback(" in block]


def _check_study_file(storage: str, name: str) -> None:
    study = optuna.load_study(study_name=name, storage=storage)
    assert study.trials
    for trial in study.trials:
        assert trial.user_attrs[attrs.ENERGY_TOTAL_J] > 0.0
        assert trial.user_attrs[attrs.ENERGY_INVALID_WINDOWS] == 0
    assert optuna.trial.TrialState.PRUNED in [trial.state for trial in study.trials]
    code, out, err = run_cli(["report", "--storage", storage, "--study", name])
    assert code == 0, err
    assert "total energy" in out


def test_the_documented_examples_show_both_ways() -> None:
    assert len(HF_BLOCKS) == 2
    assert "hyperparameter_search(" in HF_BLOCKS[0] and "callback.hp_space(" in HF_BLOCKS[0]
    assert "trainer.train(trial=trial)" in HF_BLOCKS[1]


@pytest.mark.parametrize("index", range(len(HF_BLOCKS)))
def test_the_documented_example_runs(
    index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "studies").mkdir()
    script = tmp_path / f"example_{index}.py"
    script.write_text(HF_BLOCKS[index], encoding="utf-8")
    runpy.run_path(str(script), run_name="__main__")
    storage = f"sqlite:///{tmp_path / 'studies' / 'transformers.db'}"
    names = optuna.get_all_study_names(storage)
    assert len(names) == 1
    _check_study_file(storage, names[0])
