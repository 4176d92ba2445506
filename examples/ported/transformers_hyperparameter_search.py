"""
The Transformers docs' example "Hyperparameter Search using Trainer API" (Optuna backend),
ported to SM².

The Trainer fine-tunes a sequence classifier; `hp_space` searches the learning rate and the batch
size, `compute_objective` names the metric, and `trainer.hyperparameter_search` runs the study
(the learning rate is searched, so no stable LR is reported: the pruner ranks by accuracy and
energy).

Lines marked "SM²:" are the changes docs/your-training-code.md lists for the Hugging Face
Trainer; lines marked "CI:" only make the script run offline, fast and repeatably in the tests
(scikit-learn's digits read as sequences of pixel tokens and a small BERT built from its config
instead of a text data set and a pretrained checkpoint, fewer trials, seeds).

    python examples/ported/transformers_hyperparameter_search.py
    optuna-sm2 report --storage sqlite:///transformers_hyperparameter_search.db \
        --study transformers_hyperparameter_search
"""

import numpy as np
import optuna
import torch
from sklearn.datasets import load_digits  # CI: offline data instead of a text data set
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

from optuna_sm2 import SuccessiveHalvingEnergyPruner  # SM²
from optuna_sm2.integration import SM2TrainerCallback  # SM²

N_TRAIN, N_VALID, N_TRIALS = 300, 100, 6  # CI: a small study


class Digits(torch.utils.data.Dataset):
    """CI: 8x8 digits pooled to 4x4, each pixel a token (0..16), as a tokenizer's ids."""

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
        "learning_rate": trial.suggest_float("learning_rate", 1e-3, 3e-2, log=True),  # CI
        "per_device_train_batch_size": trial.suggest_categorical(
            "per_device_train_batch_size", [16, 32, 64, 128]
        ),
    }


def model_init(trial):
    config = BertConfig(  # CI: a small BERT from its config, not from_pretrained(...)
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


if __name__ == "__main__":
    digits = load_digits()  # CI
    train_dataset = Digits(digits.images[:N_TRAIN], digits.target[:N_TRAIN])  # CI
    eval_dataset = Digits(digits.images[-N_VALID:], digits.target[-N_VALID:])  # CI

    training_args = TrainingArguments(
        output_dir="transformers_hyperparameter_search",
        eval_strategy="epoch",  # SM²
        save_strategy="no",
        num_train_epochs=4,
        report_to="none",
        disable_tqdm=True,
    )
    callback = SM2TrainerCallback(metric=compute_objective)  # SM²
    trainer = Trainer(
        model=None,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        compute_metrics=compute_metrics,
        model_init=model_init,
        callbacks=[callback],  # SM²
    )
    best_trial = trainer.hyperparameter_search(
        direction="maximize",
        backend="optuna",
        hp_space=callback.hp_space(optuna_hp_space),  # SM²
        n_trials=N_TRIALS,
        compute_objective=compute_objective,
        pruner=SuccessiveHalvingEnergyPruner(rung_steps=[0, 1]),  # SM²
        storage="sqlite:///transformers_hyperparameter_search.db",  # SM²
        study_name="transformers_hyperparameter_search",  # SM²
        sampler=optuna.samplers.TPESampler(seed=0),  # CI: a repeatable run
    )
    print(best_trial)
