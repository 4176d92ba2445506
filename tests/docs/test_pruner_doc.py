"""The Python example of docs/pruner.md runs as written (Optuna's decisions, spelled out)."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "pruner.md"


def test_pruner_doc_example_runs(tmp_path, capsys):
    (block,) = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    script = tmp_path / "pruner_doc.py"
    script.write_text(block, encoding="utf-8")
    runpy.run_path(str(script), run_name="__main__")
    pruned = int(capsys.readouterr().out.split()[0])
    assert 0 < pruned < 30  # the comparison is not vacuous
