"""The wheel and the sdist ship the LICENSE that pyproject.toml declares, and py.typed."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_and_sdist_ship_the_license(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "optuna_sm2", source / "optuna_sm2")
    out = tmp_path / "dist"
    out.mkdir()
    for hook in ("build_wheel", "build_sdist"):  # one process each, as a build frontend does
        code = f"import sys, setuptools.build_meta as b; b.{hook}(sys.argv[1])"
        done = subprocess.run(
            [sys.executable, "-c", code, str(out)],
            cwd=source,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), names
    assert "optuna_sm2/py.typed" in names
    with tarfile.open(sdist) as archive:
        assert any(n.endswith("/LICENSE") for n in archive.getnames())
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")
