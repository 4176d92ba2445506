"""The Transformers docs' ``trainer.hyperparameter_search`` example, ported to SM².

    python examples/transformers_hyperparameter_search.py [--tiny]

Writes the study ``hf-search`` to ``studies/transformers.db``; then
``optuna-sm2 report --storage sqlite:///studies/transformers.db --study hf-search``.

The script is the usual one ("Hyperparameter Search using Trainer API": ``hp_space``,
``model_init``, ``compute_objective``, ``hyperparameter_search(backend="optuna")``) with the
changes ``docs/your-training-code.md`` lists, each marked ``# SM²:``. So that it runs offline,
the text data set and the pretrained checkpoint are replaced by scikit-learn's digits read as
sequences of pixel tokens and a small BERT built from its config (``# offline:``).
"""

from __future__ import annotations

import argparse

import numpy as np
import optuna
import torch
from sklearn.datasets import load_digits  # offline: the data ships with scikit-learn
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

from optuna_sm2 import SuccessiveHalvingEnergyPruner  # SM²: the energy-aware pruner
from optuna_sm2.integration import SM2TrainerCallback  # SM²: the callback


class Digits(torch.utils.data.Dataset):
    """offline: 8x8 digits pooled to 4x4, each pixel a token (0..16), as a tokenizer's ids."""

    def __init__(self, images, labels):
        pooled = images.reshape(-1, 4, 2, 4, 2).mean(axis=(2, 4)).round().reshape(-1, 16)
        self.input_ids = torch.tensor(pooled, dtype=torch.long)
        self.labels = torch.tensor(labels, dtype=torch.long)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"input_ids": self.input_ids[i], "labels": self.labels[i]}


def optuna_hp_space(trial):
    return {
        "learning_rate": trial.suggest_float("learning_rate", 1e-3, 3e-2, log=True),
        "per_device_train_batch_size": trial.suggest_categorical(
            "per_device_train_batch_size", [16, 32, 64, 128]
        ),
    }


def model_init(trial):
    # offline: instead of AutoModelForSequenceClassification.from_pretrained(...)
    config = BertConfig(
        vocab_size=17,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=16,
        num_labels=10,
    )
    return BertForSequenceClassification(config)


def compute_metrics(eval_pred):
    logits, labels = eval_pred
    return {"accuracy": float((np.argmax(logits, axis=-1) == labels).mean())}


def compute_objective(metrics):
    return metrics["eval_accuracy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a few trials, for smoke tests")
    args = parser.parse_args()
    n_train, n_valid, n_trials = (300, 100, 6) if args.tiny else (1400, 397, 20)

    digits = load_digits()
    train = Digits(digits.images[:n_train], digits.target[:n_train])
    valid = Digits(digits.images[-n_valid:], digits.target[-n_valid:])

    training_args = TrainingArguments(
        output_dir="hf-search",
        eval_strategy="epoch",  # SM² measures and reports once per epoch (usual already)
        save_strategy="no",
        num_train_epochs=4,
        report_to="none",
        disable_tqdm=True,
    )
    callback = SM2TrainerCallback(metric=compute_objective)  # SM²: what the Trainer optimizes
    trainer = Trainer(
        model=None,
        args=training_args,
        train_dataset=train,
        eval_dataset=valid,
        compute_metrics=compute_metrics,
        model_init=model_init,
        callbacks=[callback],  # SM²: the callback
    )
    best_trial = trainer.hyperparameter_search(
        direction="maximize",
        backend="optuna",
        hp_space=callback.hp_space(optuna_hp_space),  # SM²: the callback sees each trial
        n_trials=n_trials,
        compute_objective=compute_objective,
        # SM²: the energy-aware pruner, rungs in epochs; the LR is searched (explore=False),
        # so the pruner ranks by accuracy and energy only (beta=1.0)
        pruner=SuccessiveHalvingEnergyPruner(rung_steps=[0, 1], beta=1.0),
        storage="sqlite:///studies/transformers.db",  # SM²: a study the report can read
        study_name="hf-search",
        load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=0),  # a repeatable run for CI
    )
    print(best_trial)


if __name__ == "__main__":
    main()
