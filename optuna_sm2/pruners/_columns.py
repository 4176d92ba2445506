"""A rung's competitors as numpy columns: what :func:`~optuna_sm2.pruners._ranking.rank_checked`
reads of their records, one array per field, so that a decision costs numpy work rather than a
Python step per competitor. The pruner keeps the columns of finished trials (their records
never change) and adds only the others'."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import numpy.typing as npt

from optuna_sm2.pruners._records import RungRecord


def _column(figures: Sequence[float | None]) -> npt.NDArray[np.float64]:
    return np.array([np.nan if x is None else x for x in figures], dtype=np.float64)


@dataclass(frozen=True, eq=False)
class RungColumns:
    """The fields of records, in their order; ``NaN`` where a figure is unknown (``None``).

    Attributes:
        trials: Each record's trial number.
        values: Each record's value (NaN or infinite as stored).
        energies: ``energy_per_epoch_j`` (finite and >= 0 when known).
        lrs: ``stable_lr`` (finite and > 0 when known).
        spreads: ``energy_per_epoch_spread``.
        resolutions: ``energy_per_epoch_resolution``.

    Example:
        >>> from optuna_sm2.pruners import RungRecord
        >>> columns = RungColumns.of([RungRecord(3, 0.5, 120.0), RungRecord(4, 0.7, None, 0.1)])
        >>> columns.trials.tolist(), columns.energies.tolist(), columns.lrs.tolist()
        ([3, 4], [120.0, nan], [nan, 0.1])
        >>> len(RungColumns.joined([columns, columns]))
        4
    """

    trials: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]
    energies: npt.NDArray[np.float64]
    lrs: npt.NDArray[np.float64]
    spreads: npt.NDArray[np.float64]
    resolutions: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.trials)

    @classmethod
    def of(cls, records: Sequence[RungRecord]) -> RungColumns:
        """The columns of ``records``."""
        return cls(
            trials=np.array([r.trial for r in records], dtype=np.int64),
            values=np.array([r.value for r in records], dtype=np.float64),
            energies=_column([r.energy_per_epoch_j for r in records]),
            lrs=_column([r.stable_lr for r in records]),
            spreads=_column([r.energy_per_epoch_spread for r in records]),
            resolutions=_column([r.energy_per_epoch_resolution for r in records]),
        )

    @classmethod
    def joined(cls, parts: Sequence[RungColumns]) -> RungColumns:
        """The columns of the parts' records, one part after the other."""
        return cls(
            **{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)}
        )
