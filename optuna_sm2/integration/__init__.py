"""SM² inside the training code people already have: PyTorch Lightning, the Hugging Face
Trainer, several GPUs (DDP).

``SM2PruningCallback`` (a Lightning ``Callback`` of ``lightning.pytorch`` and of
``pytorch_lightning``, extra ``[lightning]``) runs the SM² schedule inside ``Trainer.fit``;
``SM2TrainerCallback`` (a ``transformers.TrainerCallback``, extra ``[transformers]``) inside
``transformers.Trainer.train``; ``DistributedEnergyTracker`` sums each energy window over the
ranks of ``torch.distributed``. Importing this package imports neither torch, Lightning nor
transformers: each name loads what it needs when first used. See
``docs/your-training-code.md`` and ``docs/distributed.md``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from optuna_sm2.integration._lightning import SM2PruningCallback
    from optuna_sm2.integration._transformers import SM2TrainerCallback
    from optuna_sm2.training import DistributedEnergyTracker

_LAZY = {
    "SM2PruningCallback": "optuna_sm2.integration._lightning",
    "SM2TrainerCallback": "optuna_sm2.integration._transformers",
    "DistributedEnergyTracker": "optuna_sm2.training",
}
"""Name -> its module, imported when the name is first used."""

_INSTALL = {
    "lightning": "pip install 'optuna-sm2[lightning]'",
    "transformers": "pip install 'optuna-sm2[transformers]'",
    "accelerate": "pip install 'optuna-sm2[transformers]'",
    "torch": "install the build for your hardware (https://pytorch.org), or `pip install "
    "'optuna-sm2[torch]'`",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    except ModuleNotFoundError as exc:
        if exc.name not in _INSTALL:
            raise
        raise ImportError(
            f"optuna_sm2.integration.{name} needs {exc.name}: {_INSTALL[exc.name]}."
        ) from exc
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = ["DistributedEnergyTracker", "SM2PruningCallback", "SM2TrainerCallback"]
