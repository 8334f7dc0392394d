"""Command-line flags the quality benchmark and the paper study share: seeds and the budget."""

from __future__ import annotations

import argparse


def add_budget_args(p: argparse.ArgumentParser, minutes: float) -> None:
    """--seeds, --cpu-minutes, --max-steps, --checks: every model gets the same budget."""
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3],
                   help="training seeds of every model and SASRec; tables give mean ± std")
    p.add_argument("--cpu-minutes", type=float, default=minutes,
                   help="training wall minutes per model on this host's CPU cores")
    p.add_argument("--max-steps", type=int, default=0,
                   help="fine-tune steps per model; 0 = from --cpu-minutes by a probe")
    p.add_argument("--checks", type=int, default=5,
                   help="validation Recall checks per fine-tune when the recipe selects its "
                        "checkpoint by them (select_by: valid_recall)")
