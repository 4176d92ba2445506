"""Where SM2PruningCallback's blocks start: a pure rule."""

from __future__ import annotations

import pytest

from optuna_sm2.integration._blocks import DEFAULT_BLOCK_EPOCHS, Blocks


@pytest.mark.parametrize(
    ("blocks", "starts"),
    [
        (Blocks(), list(range(0, 20, DEFAULT_BLOCK_EPOCHS))),
        (Blocks(every=1), list(range(20))),
        (Blocks(every=4), [0, 4, 8, 12, 16]),
        # Blocks end at the rungs, then keep the last block's length.
        (Blocks(rung_steps=(4, 9, 14)), [0, 5, 10, 15]),
        (Blocks(rung_steps=(1, 3)), [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]),
        (Blocks(rung_steps=(0,)), list(range(20))),
        (Blocks(rung_steps=(2, 3, 7)), [0, 3, 4, 8, 12, 16]),
    ],
)
def test_block_starts(blocks: Blocks, starts: list[int]) -> None:
    assert blocks.starts(20) == starts
