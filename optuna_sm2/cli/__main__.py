from __future__ import annotations

import sys

from optuna_sm2.cli import main

sys.exit(main())
