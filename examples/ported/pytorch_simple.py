"""
optuna-examples' pytorch/pytorch_simple.py (MIT), ported to SM².

Optuna example that optimizes multi-layer perceptrons using PyTorch: the network architecture as
well as the optimizer configuration, its learning rate included (so no stable LR is reported:
the pruner ranks by accuracy and energy).

Lines marked "SM²:" are the changes docs/your-training-code.md lists for your own training loop;
lines marked "CI:" only make the script run offline, fast and repeatably in the tests
(scikit-learn's digits instead of FashionMNIST, fewer trials, seeds).

    python examples/ported/pytorch_simple.py
    optuna-sm2 report --storage sqlite:///pytorch_simple.db --study pytorch_simple
"""

import optuna
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
import torch.utils.data
from optuna.trial import TrialState
from sklearn.datasets import load_digits  # CI: offline data instead of torchvision's

from optuna_sm2 import SuccessiveHalvingEnergyPruner, TrialEnergy, report  # SM²

DEVICE = torch.device("cpu")
BATCHSIZE = 128
CLASSES = 10
EPOCHS = 10
LOG_INTERVAL = 10
N_TRAIN_EXAMPLES = BATCHSIZE * 30
N_VALID_EXAMPLES = BATCHSIZE * 10
N_TRIALS = 16  # CI: 100 trials and a 600 s timeout in the original
SEED = 0  # CI


def define_model(trial):
    # We optimize the number of layers, hidden units and dropout ratio in each layer.
    n_layers = trial.suggest_int("n_layers", 1, 3)
    layers = []

    in_features = 8 * 8  # CI: digits are 8 x 8 images
    for i in range(n_layers):
        out_features = trial.suggest_int("n_units_l{}".format(i), 4, 128)
        layers.append(nn.Linear(in_features, out_features))
        layers.append(nn.ReLU())
        p = trial.suggest_float("dropout_l{}".format(i), 0.2, 0.5)
        layers.append(nn.Dropout(p))

        in_features = out_features
    layers.append(nn.Linear(in_features, CLASSES))
    layers.append(nn.LogSoftmax(dim=1))

    return nn.Sequential(*layers)


def get_mnist():
    # CI: scikit-learn's digits (1797 images, shipped with it) instead of FashionMNIST.
    digits = load_digits()
    images = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)
    labels = torch.tensor(digits.target)
    train = torch.utils.data.TensorDataset(images[:1437], labels[:1437])
    valid = torch.utils.data.TensorDataset(images[1437:], labels[1437:])
    train_loader = torch.utils.data.DataLoader(train, batch_size=BATCHSIZE, shuffle=True)
    valid_loader = torch.utils.data.DataLoader(valid, batch_size=BATCHSIZE, shuffle=True)

    return train_loader, valid_loader


def objective(trial):
    torch.manual_seed(SEED + trial.number)  # CI: repeatable weights, dropout and shuffling

    # Generate the model.
    model = define_model(trial).to(DEVICE)

    # Generate the optimizers.
    optimizer_name = trial.suggest_categorical("optimizer", ["Adam", "RMSprop", "SGD"])
    lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
    optimizer = getattr(optim, optimizer_name)(model.parameters(), lr=lr)

    # Get the FashionMNIST dataset.
    train_loader, valid_loader = get_mnist()

    energy = TrialEnergy(trial)  # SM²: the trial's energy book

    # Training of the model.
    for epoch in range(EPOCHS):
        model.train()
        with energy.window("train"):  # SM²: each epoch's training is measured
            for batch_idx, (data, target) in enumerate(train_loader):
                # Limiting training data for faster epochs.
                if batch_idx * BATCHSIZE >= N_TRAIN_EXAMPLES:
                    break

                data, target = data.view(data.size(0), -1).to(DEVICE), target.to(DEVICE)

                optimizer.zero_grad()
                output = model(data)
                loss = F.nll_loss(output, target)
                loss.backward()
                optimizer.step()

        # Validation of the model.
        model.eval()
        correct = 0
        with energy.window("eval"), torch.no_grad():  # SM²: and each validation
            for batch_idx, (data, target) in enumerate(valid_loader):
                # Limiting validation data.
                if batch_idx * BATCHSIZE >= N_VALID_EXAMPLES:
                    break
                data, target = data.view(data.size(0), -1).to(DEVICE), target.to(DEVICE)
                output = model(data)
                # Get the index of the max log-probability.
                pred = output.argmax(dim=1, keepdim=True)
                correct += pred.eq(target.view_as(pred)).sum().item()

        accuracy = correct / min(len(valid_loader.dataset), N_VALID_EXAMPLES)

        # SM²: report() stores the value with the energy per epoch (was trial.report).
        report(trial, accuracy, epoch, energy_per_epoch_j=energy.energy_per_epoch_j)  # SM²

        # Handle pruning based on the intermediate value.
        if trial.should_prune():
            raise optuna.exceptions.TrialPruned()

    return accuracy


if __name__ == "__main__":
    study = optuna.create_study(
        direction="maximize",
        pruner=SuccessiveHalvingEnergyPruner(),  # SM²: instead of the default MedianPruner
        storage="sqlite:///pytorch_simple.db",  # SM²: a storage `optuna-sm2 report` reads
        study_name="pytorch_simple",  # SM²
        sampler=optuna.samplers.TPESampler(seed=SEED),  # CI: a repeatable search
    )
    study.optimize(objective, n_trials=N_TRIALS)

    pruned_trials = study.get_trials(deepcopy=False, states=[TrialState.PRUNED])
    complete_trials = study.get_trials(deepcopy=False, states=[TrialState.COMPLETE])

    print("Study statistics: ")
    print("  Number of finished trials: ", len(study.trials))
    print("  Number of pruned trials: ", len(pruned_trials))
    print("  Number of complete trials: ", len(complete_trials))

    print("Best trial:")
    trial = study.best_trial

    print("  Value: ", trial.value)

    print("  Params: ")
    for key, value in trial.params.items():
        print("    {}: {}".format(key, value))
