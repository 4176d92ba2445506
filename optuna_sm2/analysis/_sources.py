"""What an energy figure is: measured, an estimate or simulated. The one place that says so."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from optuna_sm2.energy import SOURCES

SourceKind = Literal["measured", "estimate", "simulated", "unknown"]

ESTIMATES = frozenset({"nvml-power-estimate", "cpu-time-estimate"})
"""Labels of :data:`optuna_sm2.energy.SOURCES` whose meter estimates instead of measuring."""

SIMULATED = frozenset({"simulated"})
"""Labels of :data:`optuna_sm2.energy.SOURCES` whose meter measures nothing at all."""

_WORDS: dict[SourceKind, str] = {
    "measured": "measured",
    "estimate": "an estimate",
    "simulated": "simulated, not measured",
    "unknown": "not a source optuna-sm2 knows, so not called a measurement",
}


def source_kind(source: str | None) -> SourceKind:
    """What the figures of one ``sm2.energy_source`` label are.

    A label is one of :data:`optuna_sm2.energy.SOURCES` or several joined by ``+`` (a sum of
    meters). A sum is simulated if any part is, else an estimate if any part is; a label
    with a part that is not one of ``SOURCES`` (or no label) is ``unknown``.

    Example:
        >>> from optuna_sm2.analysis import source_kind
        >>> source_kind("nvml-counter+rapl"), source_kind("rapl+cpu-time-estimate")
        ('measured', 'estimate')
        >>> source_kind("simulated"), source_kind("my-meter"), source_kind(None)
        ('simulated', 'unknown', 'unknown')
    """
    parts = source.split("+") if source else []
    if not parts or any(p not in SOURCES for p in parts):
        return "unknown"
    if any(p in SIMULATED for p in parts):
        return "simulated"
    if any(p in ESTIMATES for p in parts):
        return "estimate"
    return "measured"


def source_label(sources: Iterable[str]) -> str:
    """The energy sources in words, each with what it is; an estimate is never called a
    measurement.

    Example:
        >>> from optuna_sm2.analysis import source_label
        >>> source_label(["cpu-time-estimate"])
        'cpu-time-estimate: an estimate'
        >>> source_label(["nvml-counter+rapl", "simulated"])
        'nvml-counter+rapl: measured; simulated: simulated, not measured'
    """
    listed = list(sources)
    if not listed:
        return "energy source unknown (no sm2.energy_source)"
    return "; ".join(f"{s}: {_WORDS[source_kind(s)]}" for s in listed)
