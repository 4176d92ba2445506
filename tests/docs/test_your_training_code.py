"""The examples of docs/your-training-code.md run as written: the own-loop and ``SM2Objective``
ones here; the Lightning and DDP ones, which need a study file and two processes, in
``tests/integration/test_docs.py``."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest
import torch

PAGE = Path(__file__).resolve().parents[2] / "docs" / "your-training-code.md"
TEXT = PAGE.read_text(encoding="utf-8")
BLOCKS = re.findall(r"```python\n(.*?)```", TEXT[: TEXT.index("## PyTorch Lightning")], flags=re.S)


def test_each_way_in_has_its_section() -> None:
    for heading in (
        "## Your own training loop",
        "## `SM2Objective`: tensors or a `Dataset`",
        "## PyTorch Lightning",
        "## Several GPUs per trial (DDP)",
    ):
        assert heading in TEXT
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_example_runs(
    index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    torch.set_num_threads(1)
    script = tmp_path / f"example_{index}.py"
    script.write_text(BLOCKS[index], encoding="utf-8")
    runpy.run_path(str(script), run_name="__main__")
    assert capsys.readouterr().out.strip()  # each prints what it found
