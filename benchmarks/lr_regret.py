"""Regret of SM²'s learning rate against every constant LR, on six model families.

Two measures, on scikit-learn's handwritten digits (1,797 8x8 images in the wheel; 1,437 train,
360 validation, the split of ``optuna-sm2 demo``; nothing is downloaded) and six families:
logistic regression, the demo's MLP (64 hidden), a deeper MLP (4 x 64), a CNN with batch norm,
a GRU over the image rows, a 1-layer Transformer over the rows. Quality is the validation
accuracy; chance is the validation share of the most frequent class (0.142). A case counts only
when some constant LR trains (best >= chance + 0.10); a result "at chance" scores <= chance +
0.05. In both, ``regret = (best constant's quality - SM²'s) / (best - chance)``.

**Horizon regret** (the default): the schedule SM² trains a trial with, against constant LRs
over the same training. For each optimizer (plain SGD, SGD with momentum 0.9, Adam, AdamW),
family, batch size and start, the SM² arm runs ``--blocks`` blocks (default 3); before each, one
exploration exactly as ``SM2Objective`` runs it (``sweep_plan(n_train, batch, 0.25, n_lrs)``,
``plan.n_batches`` batches of a fresh shuffle, ``explore_lr`` with its own default grid and the
user's optimizer with its current state as ``optimizer=``), then ``--epochs`` epochs (default 2)
at the pick with that same optimizer, its state carried across blocks. Each constant arm trains
the same blocks x epochs at one LR of a half-decade grid from 1e-5 to 3.16, from the same
weights, optimizer state, batch order and dropout stream. A training loss that is not finite
stops an arm (SM2Objective prunes such a trial): its quality counts as chance. Starts: fresh
weights, or "trained": 2 epochs (batch 16) at the optimizer's usual LR (``USER_LR``) from the
fresh weights, the optimizer's state kept. The SM² arm's optimizer is built at that usual LR
too (the LR a user would have configured).

Every case is stored in a JSON file (``--cases-out``) as soon as it is done, so runs resume and
can be split across commands: the constant arms (which no LR rule changes) keyed by optimizer,
family, batch size, start and schedule; the SM² arm also by a label of the optuna_sm2 code
(``--label``, default its last commit and ``-dirty`` when changed). ``--max-minutes`` stops
between cases; the summary covers the selected cases found in the file.

    nice -n 10 .venv/bin/python benchmarks/lr_regret.py --quick   # 24 cases, ~5 minutes
    nice -n 10 .venv/bin/python benchmarks/lr_regret.py --max-minutes 20 --optimizers adam

**One-epoch regret** (``--one-epoch``): one exploration on plain SGD (the paper's grid of 20 LRs
over 1e-3 .. 1), then from the same weights one epoch of plain SGD at the pick and at every grid
LR (mean over ``--orders`` data orders). "Trained" starts there: 2 epochs of Adam (lr 3e-3,
batch 16). Also printed: the exploration's samples against its stated budget
(``explore_fraction`` of the set plus one batch), and the exploration's joules per sample
against a thorough epoch's on a constant-power ``SimulatedMeter`` read on the wall clock
(median of 3 side by side).

    nice .venv/bin/python benchmarks/lr_regret.py --one-epoch          # ~10 minutes
    nice .venv/bin/python benchmarks/lr_regret.py --one-epoch --quick  # 2 families, 3 batch sizes

The "before" column of docs/lr-sweep.md's one-epoch table is this script (as of commit
99c2b95, before the horizon part) copied into a checkout of older code and run there (``git
worktree add /tmp/before 5304717^``; the script puts its own checkout first on ``sys.path``).
Without ``sweep_plan`` the exploration gets the batches the old objective gave it (the 25%
share, cycled until every grid LR has a batch).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import inspect
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import optuna_sm2.lr as lr_package
from optuna_sm2 import EnergyTracker, PreloadedBatches, explore_lr
from optuna_sm2.energy import SimulatedMeter
from optuna_sm2.lr import sweep_plan
from optuna_sm2.scenarios.digits import load_digits
from optuna_sm2.training._phases import exploration_batches

Pair = tuple[torch.Tensor, torch.Tensor]
GRID = np.logspace(-3, 0, 20)
FRACTION = 0.25
TRAINS = 0.10  # best grid quality at least this far above chance: some LR trains
AT_CHANCE = 0.05  # quality at most this far above chance: left at chance


class GRU(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(8, 32, batch_first=True)
        self.head = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(x.view(-1, 8, 8))
        return self.head(out[:, -1])


class RowTransformer(nn.Module):
    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.embed = nn.Linear(8, width)
        self.pos = nn.Parameter(torch.randn(8, width) * 0.02)
        layer = nn.TransformerEncoderLayer(width, 4, 64, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.head = nn.Linear(width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(x.view(-1, 8, 8)) + self.pos).mean(1))


def deep_mlp() -> nn.Module:
    layers: list[nn.Module] = [nn.Linear(64, 64), nn.ReLU()]
    for _ in range(3):
        layers += [nn.Linear(64, 64), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(64, 10))


def cnn() -> nn.Module:
    return nn.Sequential(
        nn.Unflatten(1, (1, 8, 8)),
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(512, 10),
    )  # fmt: skip


FAMILIES: dict[str, Callable[[], nn.Module]] = {
    "logistic regression": lambda: nn.Linear(64, 10),
    "MLP (64)": lambda: nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10)),
    "deeper MLP (4x64)": deep_mlp,
    "CNN (batch norm)": cnn,
    "GRU (rows)": GRU,
    "Transformer (rows, 1 layer)": RowTransformer,
}


def accuracy(model: nn.Module, valid: Pair) -> float:
    model.eval()
    with torch.no_grad():
        return float((model(valid[0]).argmax(1) == valid[1]).float().mean())


def one_epoch(model: nn.Module, train: Pair, batch_size: int, lr: float, order: int) -> None:
    x, y = train
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    model.train()
    torch.manual_seed(100 + order)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(order))
    for i in range(0, len(y), batch_size):
        index = perm[i : i + batch_size]
        opt.zero_grad()
        F.cross_entropy(model(x[index]), y[index]).backward()
        opt.step()


def quality(
    start: nn.Module, data: tuple[Pair, Pair], batch_size: int, lr: float, orders: int
) -> float:
    """Mean validation accuracy after one epoch at ``lr`` from ``start``, over data orders."""
    out = []
    for order in range(orders):
        model = copy.deepcopy(start)
        one_epoch(model, data[0], batch_size, lr, order)
        out.append(accuracy(model, data[1]))
    return float(np.mean(out))


def pretrained(model: nn.Module, train: Pair) -> nn.Module:
    """2 epochs of Adam (lr 3e-3, batch 16) from ``model``'s weights."""
    model = copy.deepcopy(model)
    x, y = train
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    g = torch.Generator().manual_seed(5)
    for _ in range(2):
        perm = torch.randperm(len(y), generator=g)
        for i in range(0, len(y), 16):
            index = perm[i : i + 16]
            opt.zero_grad()
            F.cross_entropy(model(x[index]), y[index]).backward()
            opt.step()
    return model


def cycled_batches(train: Pair, batch_size: int, count: int, seed: int) -> list[Pair]:
    """``count`` batches of the exploration's share, reshuffled when the share runs out (the
    way the objective cycles the data)."""
    x, y = train
    share = max(math.ceil(FRACTION * len(y)), batch_size)
    g = torch.Generator().manual_seed(seed)
    out: list[Pair] = []
    while len(out) < count:
        perm = torch.randperm(len(y), generator=g)[:share]
        for i in range(0, share, batch_size):
            out.append((x[perm[i : i + batch_size]], y[perm[i : i + batch_size]]))
            if len(out) == count:
                break
    return out


def explore(model: nn.Module, train: Pair, batch_size: int, seed: int, **kwargs: Any) -> Any:
    """One exploration as the objective runs it (or, without ``sweep_plan``, as it used to)."""
    n = len(train[1])
    plan_of = getattr(lr_package, "sweep_plan", None)
    if plan_of is None:  # an optuna_sm2 from before the plan: the old objective's batches
        count = max(20, -(-max(math.ceil(FRACTION * n), batch_size) // batch_size))
        batches = cycled_batches(train, batch_size, count, seed)
        return explore_lr(model, F.cross_entropy, batches, **kwargs)
    plan = plan_of(n, batch_size, FRACTION, len(GRID))
    batches = cycled_batches(train, batch_size, plan.n_batches, seed)
    return explore_lr(model, F.cross_entropy, batches, plan=plan, **kwargs)


def regret_table(families: list[str], batch_sizes: list[int], orders: int) -> None:
    data = load_digits()
    train, valid = data
    chance = float(torch.bincount(valid[1]).max()) / len(valid[1])
    regrets: list[float] = []
    at_chance: list[str] = []
    spend: dict[int, list[float]] = {b: [] for b in batch_sizes}
    print(
        "| family | start | batch | pick | quality at pick | best grid LR | best quality "
        "| regret | samples / budget |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name in families:
        torch.manual_seed(0)
        fresh = FAMILIES[name]()
        for start, model in (("fresh", fresh), ("trained", pretrained(fresh, train))):
            for batch_size in batch_sizes:
                grid = np.array(
                    [quality(model, data, batch_size, float(lr), orders) for lr in GRID]
                )
                result = explore(model, train, batch_size, seed=batch_size)
                pick = result.selected_lr
                match = np.flatnonzero(np.isclose(GRID, pick, rtol=1e-9))
                picked = (
                    float(grid[match[0]])
                    if match.size
                    else quality(model, data, batch_size, pick, orders)
                )
                best = float(grid.max())
                samples = getattr(result, "samples_processed", None)
                if samples is None:  # before the count: the sweep's batches and the checks'
                    samples = batch_size * (result.n_batches + 7 * len(result.checks))
                ratio = samples / (FRACTION * len(train[1]) + batch_size)
                spend[batch_size].append(ratio)
                if best - chance >= TRAINS:
                    regret = (best - picked) / (best - chance)
                    regrets.append(regret)
                    shown = f"{regret:.3f}"
                    if picked <= chance + AT_CHANCE:
                        at_chance.append(f"{name}, {start}, batch {batch_size}")
                else:
                    shown = "n/a (no LR trains)"
                print(
                    f"| {name} | {start} | {batch_size} | {pick:.3g} | {picked:.3f} "
                    f"| {GRID[grid.argmax()]:.3g} | {best:.3f} | {shown} | {ratio:.2f} |",
                    flush=True,
                )
    r = np.array(regrets)
    print(
        f"\nchance = {chance:.3f}; {r.size} cases where some grid LR trains: median regret "
        f"{np.median(r):.3f}, mean {r.mean():.3f}, worst {r.max():.3f}; above 0.25: "
        f"{int((r > 0.25).sum())}; above 0.10: {int((r > 0.10).sum())}; picks left at chance "
        f"while some LR trains: {len(at_chance)} {at_chance}"
    )
    print("\nsamples processed / (explore_fraction x train set + one batch), per batch size:")
    print("| batch | median | max |")
    print("|---|---|---|")
    for batch_size, ratios in spend.items():
        print(f"| {batch_size} | {np.median(ratios):.2f} | {max(ratios):.2f} |")


def joules_per_sample(batch_sizes: list[int]) -> None:
    """Exploration J/sample over a thorough epoch's, constant power on the wall clock."""
    if not hasattr(lr_package, "sweep_plan"):
        return
    train, _ = load_digits()
    tracker = EnergyTracker(SimulatedMeter(power_w=100.0))
    print("\nexploration J per sample / thorough epoch J per sample (MLP and CNN, median of 3):")
    print("| batch | MLP (64) | CNN (batch norm) |")
    print("|---|---|---|")
    for batch_size in batch_sizes:
        row = []
        for name in ("MLP (64)", "CNN (batch norm)"):
            ratios = []
            for rep in range(4):  # the first is a warm-up
                torch.manual_seed(rep)
                model = FAMILIES[name]()
                copied = copy.deepcopy(model)
                with tracker.window() as epoch:
                    one_epoch(copied, train, batch_size, 0.01, rep)
                result = explore(model, train, batch_size, seed=rep, tracker=tracker)
                thorough = epoch.joules / len(train[1])
                ratios.append(result.energy.joules / result.samples_processed / thorough)
            row.append(f"{statistics.median(ratios[1:]):.2f}")
        print(f"| {batch_size} | {' | '.join(row)} |", flush=True)


# Horizon regret: SM²'s schedule against constant LRs over the same training.

OptimizerFactory = Callable[[Iterable[nn.Parameter], float], torch.optim.Optimizer]
OPTIMIZERS: dict[str, OptimizerFactory] = {
    "sgd": lambda params, lr: torch.optim.SGD(params, lr=lr),
    "momentum": lambda params, lr: torch.optim.SGD(params, lr=lr, momentum=0.9),
    "nesterov": lambda params, lr: torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True),
    "adam": lambda params, lr: torch.optim.Adam(params, lr=lr),
    "adamw": lambda params, lr: torch.optim.AdamW(params, lr=lr),
}
#: The LR a user configures for each optimizer: the trained start's pre-training, and the LR the
#: SM² arm's optimizer is built with (before the first exploration sets its own).
USER_LR = {"sgd": 0.1, "momentum": 0.01, "nesterov": 0.01, "adam": 1e-3, "adamw": 1e-3}
#: The constant arms: half-decade steps from 1e-5 to 3.16.
CONSTANTS = [float(lr) for lr in 10.0 ** (np.arange(-10, 2) / 2)]
#: The grid size SM2Objective and ``explore_lr`` default to (the plan must be for that grid).
N_LRS: int = inspect.signature(explore_lr).parameters["n_lrs"].default
SHORT_NAMES = dict(
    zip(("logreg", "mlp", "deep-mlp", "cnn", "gru", "transformer"), FAMILIES, strict=True)
)
STARTS = ("fresh", "trained")
HORIZON_BATCHES = [4, 16, 64, 256, 1024]
DEFAULT_OPTIMIZERS = ["sgd", "momentum", "adam", "adamw"]
#: ``--quick``: a small representative subset (with the four optimizers, 24 cases).
QUICK_FAMILIES, QUICK_BATCHES, QUICK_STARTS = ["mlp", "cnn", "gru"], [16, 256], ["fresh"]
ABOVE = 0.15  # the horizon target on the worst case: cases above it are counted
#: Stored cases of another version do not match: raise it when an arm's definition changes.
CASES_VERSION = 1
CASES_FILE = Path(__file__).with_name("lr_horizon_cases.json")
WEIGHTS_SEED, PRETRAIN_SEED, ORDER_SEED, EXPLORE_SEED = 0, 5, 1, 1000

LRRule = Callable[[nn.Module, torch.optim.Optimizer, int], float]
"""``rule(model, optimizer, block)``: the LR a block trains at, decided just before it."""


@dataclass(frozen=True)
class Schedule:
    """``blocks`` blocks of ``epochs`` epochs each, the LR decided before each block."""

    blocks: int = 3
    epochs: int = 2

    def key(self) -> str:
        """The schedule, the arms' version and the torch build (its arithmetic)."""
        return f"B{self.blocks}E{self.epochs}|v{CASES_VERSION}|torch {torch.__version__}"


@dataclass(frozen=True)
class Start:
    """Where every arm of a case starts: the weights and the user's optimizer state (``None``:
    a fresh optimizer)."""

    model: nn.Module
    optimizer_state: dict[str, Any] | None

    def digest(self) -> str:
        tensors = list(self.model.state_dict().values())
        if self.optimizer_state is not None:
            tensors += [
                value
                for state in self.optimizer_state["state"].values()
                for value in state.values()
                if isinstance(value, torch.Tensor)
            ]
        return fingerprint(tensors)


@dataclass(frozen=True)
class Arm:
    """One arm's training: its final quality (``None``: the loss went non-finite, training
    stopped), the LR of each block it trained, and digests of its starting weights and of the
    batches it trained on."""

    quality: float | None
    lrs: list[float]
    start_digest: str
    order_digest: str


@dataclass(frozen=True)
class Case:
    """One cell of the horizon table: an optimizer, a family, a batch size and a start."""

    optimizer: str
    family: str  # a key of SHORT_NAMES
    batch_size: int
    start: str  # one of STARTS

    def key(self, schedule: Schedule) -> str:
        return f"{self.optimizer}|{self.family}|{self.batch_size}|{self.start}|{schedule.key()}"


@dataclass(frozen=True)
class Regret:
    """A case scored: the best constant arm, and SM²'s regret against it.

    Attributes:
        best_index: Index of the best constant (the first of equals); ``None`` when every
            constant arm diverged.
        best: Its quality (chance when every one diverged).
        sm2: SM²'s quality (chance when it diverged).
        regret: ``(best - sm2) / (best - chance)``; ``None`` when no constant trains (best
            below chance + TRAINS).
        at_chance: Some constant trains and SM² ends within AT_CHANCE of chance.
    """

    best_index: int | None
    best: float
    sm2: float
    regret: float | None
    at_chance: bool


def horizon_regret(sm2: float | None, constants: list[float | None], chance: float) -> Regret:
    """Score one case; a diverged arm (``None``) counts as chance.

    >>> horizon_regret(0.8, [0.5, 0.9, None], chance=0.1)
    Regret(best_index=1, best=0.9, sm2=0.8, regret=0.125, at_chance=False)
    """
    qualities = [chance if q is None else q for q in constants]
    trained = [i for i, q in enumerate(constants) if q is not None]
    best_index = max(trained, key=lambda i: qualities[i]) if trained else None
    best = chance if best_index is None else qualities[best_index]
    ours = chance if sm2 is None else sm2
    if best - chance < TRAINS:
        return Regret(best_index, best, ours, None, False)
    regret = round((best - ours) / (best - chance), 12)
    return Regret(best_index, best, ours, regret, ours <= chance + AT_CHANCE)


def fingerprint(tensors: Iterable[torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for tensor in tensors:
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def start_of(case: Case, train: Pair) -> Start:
    """The case's fresh weights, or them after 2 epochs (batch 16) at the optimizer's usual
    LR, with the optimizer's state."""
    torch.manual_seed(WEIGHTS_SEED)
    model = FAMILIES[SHORT_NAMES[case.family]]()
    if case.start == "fresh":
        return Start(model, None)
    optimizer = OPTIMIZERS[case.optimizer](model.parameters(), USER_LR[case.optimizer])
    model.train()
    epochs = PreloadedBatches(*train, seed=PRETRAIN_SEED)
    for _ in range(2):
        for x, y in epochs.batches(16):
            optimizer.zero_grad(set_to_none=True)
            torch.autograd.backward(F.cross_entropy(model(x), y))
            optimizer.step()
    return Start(model, copy.deepcopy(optimizer.state_dict()))


def train_schedule(
    start: Start,
    optimizer_name: str,
    data: tuple[Pair, Pair],
    batch_size: int,
    schedule: Schedule,
    rule: LRRule,
) -> Arm:
    """One arm: from ``start``, before each block ``rule`` sets the LR of the user's optimizer,
    then the block's epochs train at it. Every arm gets the same epochs (one seeded order) and
    the same dropout stream (an exploration restores the RNG it used)."""
    train, valid = data
    model = copy.deepcopy(start.model)
    optimizer = OPTIMIZERS[optimizer_name](model.parameters(), USER_LR[optimizer_name])
    if start.optimizer_state is not None:  # a copy: torch's load_state_dict shares tensors
        optimizer.load_state_dict(copy.deepcopy(start.optimizer_state))
    begun = Start(model, optimizer.state_dict()).digest()
    order = hashlib.sha256()
    epochs = PreloadedBatches(*train, seed=ORDER_SEED)
    torch.manual_seed(ORDER_SEED)
    lrs: list[float] = []
    for block in range(schedule.blocks):
        lr = rule(model, optimizer, block)
        lrs.append(lr)
        for group in optimizer.param_groups:
            group["lr"] = lr
        model.train()
        for _ in range(schedule.epochs):
            for x, y in epochs.batches(batch_size):
                order.update(y.numpy().tobytes())
                optimizer.zero_grad(set_to_none=True)
                loss = F.cross_entropy(model(x), y)
                if not torch.isfinite(loss):
                    return Arm(None, lrs, begun, order.hexdigest()[:16])
                torch.autograd.backward(loss)
                optimizer.step()
    return Arm(accuracy(model, valid), lrs, begun, order.hexdigest()[:16])


def constant(lr: float) -> LRRule:
    return lambda model, optimizer, block: lr


def sm2_rule(train: Pair, batch_size: int) -> LRRule:
    """SM²'s pick before each block: ``explore_lr`` as SM2Objective calls it (its default grid,
    the user's optimizer with its state), on ``plan.n_batches`` batches of a fresh shuffle."""
    data = PreloadedBatches(*train, seed=EXPLORE_SEED)
    plan = sweep_plan(len(data), batch_size, FRACTION, N_LRS)

    def rule(model: nn.Module, optimizer: torch.optim.Optimizer, block: int) -> float:
        batches = exploration_batches(data, batch_size, plan)
        result = explore_lr(model, F.cross_entropy, batches, plan=plan, optimizer=optimizer)
        return result.selected_lr

    return rule


def code_label() -> str:
    """The optuna_sm2 code's last commit, ``-dirty`` when its files differ from it."""
    root = Path(__file__).resolve().parents[1]

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else "unknown"

    commit = git("log", "-1", "--format=%h", "--", "optuna_sm2")
    return commit + ("-dirty" if git("status", "--porcelain", "--", "optuna_sm2") else "")


@dataclass
class CaseStore:
    """The JSON file of finished cases: constant arms by case, SM² arms by case and label."""

    path: Path
    constants: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    sm2: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> CaseStore:
        if not path.exists():
            return cls(path)
        stored = json.loads(path.read_text())
        return cls(path, stored["constants"], stored["sm2"])

    def save(self) -> None:
        """Write the file whole (one line a case, sorted: branches that add cases merge)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        parts = []
        for name, entries in (("constants", self.constants), ("sm2", self.sm2)):
            lines = ",\n".join(
                f"  {json.dumps(key)}: {json.dumps(entries[key])}" for key in sorted(entries)
            )
            parts.append(f"{json.dumps(name)}: {{\n{lines}\n}}")
        partial = self.path.with_suffix(".tmp")
        partial.write_text("{\n" + ",\n".join(parts) + "\n}\n")
        os.replace(partial, self.path)

    def done(self, key: str, label: str) -> bool:
        return key in self.constants and f"{key}|{label}" in self.sm2


def run_case(
    case: Case,
    start: Start,
    data: tuple[Pair, Pair],
    schedule: Schedule,
    store: CaseStore,
    label: str,
) -> None:
    """Train the case's arms that ``store`` lacks (constant arms stored for other weights are
    trained again) and store them."""
    key = case.key(schedule)
    digest = start.digest()
    stored = store.constants.get(key)
    if stored is None or stored[0]["start_digest"] != digest:
        arms = [
            train_schedule(start, case.optimizer, data, case.batch_size, schedule, constant(lr))
            for lr in CONSTANTS
        ]
        store.constants[key] = [asdict(arm) for arm in arms]
    started = time.perf_counter()
    rule = sm2_rule(data[0], case.batch_size)
    arm = train_schedule(start, case.optimizer, data, case.batch_size, schedule, rule)
    if any(c["start_digest"] != arm.start_digest for c in store.constants[key]):
        raise RuntimeError(f"{key}: the SM² arm started elsewhere than the constants")
    finished = [c for c in store.constants[key] if c["quality"] is not None]
    if arm.quality is not None and any(c["order_digest"] != arm.order_digest for c in finished):
        raise RuntimeError(f"{key}: the SM² arm trained on other batches than the constants")
    store.sm2[f"{key}|{label}"] = {**asdict(arm), "seconds": time.perf_counter() - started}
    store.save()


def horizon_cases(
    optimizers: list[str], families: list[str], batch_sizes: list[int], starts: list[str]
) -> list[Case]:
    """Every combination, the optimizers innermost (so a run cut short covers each alike)."""
    return [
        Case(optimizer, family, batch_size, start)
        for start in starts
        for batch_size in batch_sizes
        for family in families
        for optimizer in optimizers
    ]


def run_horizon(
    cases: list[Case], schedule: Schedule, store: CaseStore, label: str, minutes: float | None
) -> None:
    """Run the cases ``store`` lacks, stopping between cases after ``minutes``."""
    data = load_digits()
    started = time.perf_counter()
    starts: dict[tuple[str, str, str], Start] = {}
    for case in cases:
        if store.done(case.key(schedule), label):
            continue
        elapsed = (time.perf_counter() - started) / 60
        if minutes is not None and elapsed >= minutes:
            print(f"stopped after {elapsed:.1f} minutes (--max-minutes {minutes})", flush=True)
            return
        begun = time.perf_counter()
        which = (case.optimizer, case.family, case.start)
        if which not in starts:
            starts[which] = start_of(case, data[0])
        run_case(case, starts[which], data, schedule, store, label)
        print(f"  {case.key(schedule)}: {time.perf_counter() - begun:.0f} s", flush=True)


def horizon_report(cases: list[Case], schedule: Schedule, store: CaseStore, label: str) -> None:
    """The per-case table and the summary per optimizer, of the cases ``store`` holds."""
    valid = load_digits()[1]
    chance = float(torch.bincount(valid[1]).max()) / len(valid[1])
    scored: dict[str, list[Regret]] = {}
    missing = 0
    print(
        "\n| optimizer | family | start | batch | SM² picks | SM² | best constant LR "
        "| its quality | regret |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for case in cases:
        key = case.key(schedule)
        if not store.done(key, label):
            missing += 1
            continue
        arm = store.sm2[f"{key}|{label}"]
        score = horizon_regret(
            arm["quality"], [c["quality"] for c in store.constants[key]], chance
        )
        scored.setdefault(case.optimizer, []).append(score)
        picks = ", ".join(f"{lr:.3g}" for lr in arm["lrs"])
        ours = "diverged" if arm["quality"] is None else f"{arm['quality']:.3f}"
        best_lr = "-" if score.best_index is None else f"{CONSTANTS[score.best_index]:.3g}"
        shown = "n/a (no LR trains)" if score.regret is None else f"{score.regret:.3f}"
        print(
            f"| {case.optimizer} | {SHORT_NAMES[case.family]} | {case.start} "
            f"| {case.batch_size} | {picks} | {ours} | {best_lr} | {score.best:.3f} "
            f"| {shown} |"
        )
    print(
        f"\nchance = {chance:.3f}; label {label}; {missing} selected cases not run yet\n\n"
        f"| optimizer | cases | counted | median regret | worst | above {ABOVE} "
        "| SM² at chance where a constant trains |"
    )
    print("|---|---|---|---|---|---|---|")
    for optimizer, scores in scored.items():
        r = np.array([s.regret for s in scores if s.regret is not None])
        median = f"{np.median(r):.3f}" if r.size else "-"
        worst = f"{r.max():.3f}" if r.size else "-"
        print(
            f"| {optimizer} | {len(scores)} | {r.size} | {median} | {worst} "
            f"| {int((r > ABOVE).sum())} | {sum(s.at_chance for s in scores)} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--one-epoch", action="store_true", help="the one-epoch regret table (plain SGD)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="horizon: MLP, CNN and GRU at batch 16 and 256, fresh; one-epoch: 2 families, "
        "3 batch sizes",
    )
    parser.add_argument("--orders", type=int, default=2, help="one-epoch: data orders")
    parser.add_argument(
        "--optimizers", nargs="+", choices=list(OPTIMIZERS), default=DEFAULT_OPTIMIZERS
    )
    parser.add_argument("--families", nargs="+", choices=list(SHORT_NAMES))
    parser.add_argument("--batch-sizes", nargs="+", type=int)
    parser.add_argument("--starts", nargs="+", choices=STARTS)
    parser.add_argument("--blocks", type=int, default=Schedule.blocks, help="explorations")
    parser.add_argument("--epochs", type=int, default=Schedule.epochs, help="epochs a block")
    parser.add_argument("--cases-out", type=Path, default=CASES_FILE)
    parser.add_argument("--max-minutes", type=float, help="stop between cases after this")
    parser.add_argument("--label", help="the code's label in --cases-out (default: its commit)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    machine = platform.processor() or platform.machine()
    started = time.perf_counter()
    if args.one_epoch:
        families = ["MLP (64)", "CNN (batch norm)"] if args.quick else list(FAMILIES)
        batch_sizes = [4, 64, 1024] if args.quick else [4, 8, 16, 64, 256, 1024]
        print(
            f"{date.today()}, {machine}, torch {torch.__version__}, 1 thread; quality = "
            f"validation accuracy after one epoch, mean of {args.orders} data orders\n"
        )
        regret_table(families, batch_sizes, args.orders)
        joules_per_sample(batch_sizes)
    else:
        families = args.families or (QUICK_FAMILIES if args.quick else list(SHORT_NAMES))
        batch_sizes = args.batch_sizes or (QUICK_BATCHES if args.quick else HORIZON_BATCHES)
        starts = args.starts or (QUICK_STARTS if args.quick else list(STARTS))
        n_train = len(load_digits()[0][1])
        if not all(1 <= b <= n_train for b in batch_sizes):
            parser.error(f"--batch-sizes must be integers in [1, {n_train}], got {batch_sizes}")
        if args.blocks < 1 or args.epochs < 1:
            parser.error(f"--blocks and --epochs must be >= 1, got {args.blocks}, {args.epochs}")
        schedule = Schedule(args.blocks, args.epochs)
        label = args.label or code_label()
        cases = horizon_cases(args.optimizers, families, batch_sizes, starts)
        print(
            f"{date.today()}, {machine}, torch {torch.__version__}, 1 thread; {len(cases)} "
            f"cases; {schedule.blocks} blocks of {schedule.epochs} epochs; quality = "
            f"validation accuracy at the end; cases in {args.cases_out}",
            flush=True,
        )
        store = CaseStore.load(args.cases_out)
        run_horizon(cases, schedule, store, label, args.max_minutes)
        horizon_report(cases, schedule, store, label)
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
