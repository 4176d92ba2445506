"""How the rung ranking copes with noise and diverged values: the paper's Eq. 2 against the
robust rule, side by side, over many simulated rungs.

Each rung has ``--configs`` configurations (batch sizes 4, 8, 16, ...) with a true performance,
energy per epoch and stable learning rate, and is ranked from noisy measurements of them:

- true performance: a sweet-spot batch size drawn per rung, the others worse by
  ``kappa * |distance in doublings| ** gamma`` (kappa log-uniform in [0.3 %, 5 %], gamma in
  [1, 2]) plus a half-normal 1 % of their own: a perplexity of ``level * (1 + gap)``, level
  in [15, 200] (minimize), or an accuracy of ``level / (1 + gap)``, level in [0.6, 0.95]
  (maximize);
- true energy per epoch: falls by a factor 2 ** -eta per doubling (eta in [0, 0.6]: from a
  CPU, flat, to a GPU) times a 10 % lognormal per configuration; true stable LR: a point of
  the 20-point grid over [1e-3, 1], rising with the batch size;
- measured: the value with a relative noise of sigma (drawn per rung in [1 %, 4 %]); the
  energy per epoch as the median of ``--epochs`` epoch figures, each with a 5 % normal wobble
  (the spread is stored when there are 2 or more); the stable LR one grid step off with
  probability 0.4; with probability ``--diverged`` one configuration diverged: a perplexity
  10 ** U(3, 22) times the level, or chance accuracy (0.1).

For each rule it prints, over the rungs: how often the truly best configuration is pruned
(best pruned), the mean true regret of the promoted set (each promoted configuration's
relative gap to the truly best; a diverged one counts 100 %), the regret of the best promoted
one (what halving keeps), the mean true energy per epoch of the promoted set relative to the
mean over all configurations, and how often the diverged configuration is promoted.

    python benchmarks/ranking_robustness.py [--rungs 5000] [--configs 8] [--seed 0]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from optuna_sm2.pruners import RungRecord, rank_rung

GRID = np.logspace(-3.0, 0.0, 20)


@dataclass(frozen=True)
class Rung:
    """One simulated rung: the truth and what was measured."""

    regret: np.ndarray  # true relative gap to the truly best (1.0 for a diverged one)
    energy: np.ndarray  # true energy per epoch
    diverged: int | None  # the diverged configuration, if any
    records: list[RungRecord]


def simulate(
    rng: np.random.Generator,
    n: int,
    metric: Literal["perplexity", "accuracy"],
    epochs: int,
    p_diverged: float,
) -> Rung:
    doublings = np.arange(n, dtype=np.float64)
    sweet = rng.uniform(0, n - 1)
    kappa = np.exp(rng.uniform(np.log(0.003), np.log(0.05)))
    gap = kappa * np.abs(doublings - sweet) ** rng.uniform(1, 2) + np.abs(rng.normal(0, 0.01, n))
    if metric == "perplexity":
        true = rng.uniform(15, 200) * (1 + gap)
    else:
        true = rng.uniform(0.6, 0.95) / (1 + gap)
    energy = rng.uniform(50, 500) * 2 ** (-rng.uniform(0, 0.6) * doublings)
    energy *= rng.lognormal(0, 0.1, n)
    lr_step = np.clip(
        np.round(rng.uniform(0, 8) + rng.uniform(0, 2) * doublings + rng.normal(0, 1, n)),
        0,
        19,
    ).astype(int)

    sigma = rng.uniform(0.01, 0.04)
    measured = true * (1 + sigma * rng.normal(size=n))
    diverged = int(rng.integers(n)) if rng.random() < p_diverged else None
    if diverged is not None:
        measured[diverged] = (
            true.min() * 10 ** rng.uniform(3, 22) if metric == "perplexity" else 0.1
        )
    figures = energy[:, None] * (1 + 0.05 * rng.normal(size=(n, epochs)))
    median = np.median(figures, axis=1)
    spread = (figures.max(axis=1) - figures.min(axis=1)) / (2 * median)
    off = rng.random(n) < 0.4
    lr = GRID[np.clip(lr_step + off * rng.choice([-1, 1], n), 0, 19)]

    ok = np.ones(n, dtype=bool)
    if diverged is not None:
        ok[diverged] = False
    best = true[ok].min() if metric == "perplexity" else true[ok].max()
    regret = np.abs(true - best) / abs(best)
    if diverged is not None:
        regret[diverged] = 1.0
    records = [
        RungRecord(
            i,
            float(measured[i]),
            float(median[i]),
            float(lr[i]),
            float(spread[i]) if epochs >= 2 else None,
        )
        for i in range(n)
    ]
    return Rung(regret, energy, diverged, records)


ARMS: dict[str, dict[str, Any]] = {
    "alpha=1 (Optuna's order)": {"alpha": 1.0, "ranking": "paper"},
    "paper Eq. 2, alpha=0.75": {"alpha": 0.75, "ranking": "paper"},
    "robust, tolerance 0": {"alpha": 0.75, "performance_tolerance": 0.0},
    "robust, tolerance 0.01": {"alpha": 0.75, "performance_tolerance": 0.01},
    "robust, tolerance 0.02": {"alpha": 0.75, "performance_tolerance": 0.02},
    "robust, tolerance 0.03": {"alpha": 0.75, "performance_tolerance": 0.03},
    "robust, tolerance 0.05": {"alpha": 0.75, "performance_tolerance": 0.05},
    "robust, tolerance 0.99 (~no protection)": {"alpha": 0.75, "performance_tolerance": 0.99},
}
"""The rules compared; every robust arm has ``ranking="robust"``, the default."""


def run(
    metric: Literal["perplexity", "accuracy"],
    epochs: int,
    rungs: int,
    n: int,
    p_diverged: float,
    seed: int,
) -> None:
    rng = np.random.default_rng(seed)
    direction: Literal["maximize", "minimize"] = (
        "minimize" if metric == "perplexity" else "maximize"
    )
    totals = {name: np.zeros(6) for name in ARMS}
    with_diverged = 0
    for _ in range(rungs):
        rung = simulate(rng, n, metric, epochs, p_diverged)
        with_diverged += rung.diverged is not None
        best = int(np.argmin(rung.regret))
        for name, kwargs in ARMS.items():
            promoted = np.array(
                rank_rung(rung.records, direction=direction, **kwargs).promoted_mask
            )
            totals[name] += (
                not promoted[best],
                rung.diverged is not None and not promoted[best],
                rung.regret[promoted].mean(),
                rung.regret[promoted].min(),
                rung.energy[promoted].mean() / rung.energy.mean(),
                rung.diverged is not None and promoted[rung.diverged],
            )
    spread = f"stored (median of {epochs} epochs)" if epochs >= 2 else "none (one epoch)"
    print(
        f"\n### {metric} ({direction}), {rungs} rungs of {n}, energy spread {spread}, "
        f"{with_diverged} rungs with a diverged configuration\n"
    )
    print(
        "| rule | best pruned | best pruned, rungs with a diverged one "
        "| regret of promoted (mean) | regret of best promoted "
        "| energy of promoted / all | diverged promoted |"
    )
    print("|---|---|---|---|---|---|---|")
    some = max(with_diverged, 1)
    for name, (pruned, pruned_div, mean, best_kept, energy, div) in totals.items():
        print(
            f"| {name} | {100 * pruned / rungs:.1f} % | {100 * pruned_div / some:.1f} % "
            f"| {100 * mean / rungs:.2f} % | {100 * best_kept / rungs:.2f} % "
            f"| {energy / rungs:.3f} | {100 * div / some:.1f} % |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rungs", type=int, default=5000)
    parser.add_argument("--configs", type=int, default=8)
    parser.add_argument("--diverged", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.rungs < 1 or args.configs < 2 or not 0 <= args.diverged <= 1:
        parser.error("--rungs must be >= 1, --configs >= 2 and --diverged in [0, 1]")
    print(
        f"{platform.node()}: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{datetime.date.today().isoformat()}, seed {args.seed}"
    )
    scenarios: tuple[tuple[Literal["perplexity", "accuracy"], int], ...] = (
        ("perplexity", 1),
        ("accuracy", 1),
        ("perplexity", 5),
    )
    for metric, epochs in scenarios:
        run(metric, epochs, args.rungs, args.configs, args.diverged, args.seed)


if __name__ == "__main__":
    main()
