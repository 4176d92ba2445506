"""The study page of the real dashboard, rendered by headless Chromium on localhost."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import optuna
import pytest

from optuna_sm2.visualization import attach_to_dashboard
from tests.support.dashboard_studies import build_dashboard_study
from tests.visualization.test_dashboard import serving

CHROMIUM = shutil.which("chromium")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)"
)

SCREENSHOT_DIR = os.environ.get("SM2_SCREENSHOT_DIR")
"""Where to keep the PNG for a look (default: only the test's temporary directory)."""


def test_study_page_screenshot(tmp_path: Path) -> None:
    import matplotlib.image

    study = optuna.load_study(study_name="sm2", storage=build_dashboard_study(tmp_path / "s.db"))
    attach_to_dashboard(study)
    png = tmp_path / "study.png"
    with serving(study._storage) as base:
        assert base.startswith("http://127.0.0.1:")
        command = [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={png}",
            "--window-size=1400,3000",
            "--virtual-time-budget=8000",
            f"{base}/dashboard/studies/{study._study_id}",
        ]
        subprocess.run(command, check=True, capture_output=True, timeout=90)
    if SCREENSHOT_DIR:
        shutil.copy(png, Path(SCREENSHOT_DIR) / "sm2-dashboard-study.png")
    assert png.stat().st_size > 20_000
    pixels = np.asarray(matplotlib.image.imread(str(png)))[..., :3]
    assert pixels.shape[:2] == (3000, 1400)
    colours = np.unique((pixels * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 50, "the page rendered nearly blank"
    assert float(pixels.std()) > 0.05
