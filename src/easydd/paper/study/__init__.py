"""``easydd study``: the paper's two empirical analyses on real data.

    easydd study selection  --dataset mnist fashion_mnist --ipcs 1 10 50 100 500 --seeds 0 1
    easydd study difficulty --dataset mnist --ipc 1 10 --methods dc dsa dsac dm mtt ftd tesla datm --iterations 60 20

**selection**: the scaling law's prediction on real images. Every training image of a pool (``--pool`` images per
class drawn once at random, or the whole class) gets its GraDN on a panel of briefly trained networks
(``easydd.difficulty``); per class the ``ipc`` easiest (smallest GraDN), the ``ipc`` hardest, or ``ipc`` random
images of the same pool are kept, and networks are trained on them from scratch and tested (the evaluation protocol
of ``easydd.evaluate``: SGD lr 0.01, momentum 0.9, weight decay 5e-4, batch 256, lr x0.1 at half, final epoch).
Because a large IPC makes that protocol very expensive on a CPU, training gets at most ``--max-steps`` SGD steps:
``epochs = min(--epochs, max(1, max_steps // batches_per_epoch))``; each record says the epochs it got. Outputs
in ``--out``: ``selection-<dataset>.jsonl`` (one line per run, resumable), then ``selection.json`` / ``.md`` / ``.png``
over every dataset found there (accuracy against IPC, one curve per rule).

**difficulty**: a short distillation per method with the same budget (``--iterations``), the same seed and the
same real-image initialisation, tracking the synthetic set's mean GraDN on the dataset's fixed reference panel
(the driver's ``track_every``). Outputs ``difficulty-<dataset>.json`` / ``.md`` / ``.png`` (GraDN relative to its
initial value, one curve per method, one panel per IPC). Trajectory methods need expert buffers
(``easydd experts --preset <method>-<dataset>-ipc<k>-cpu``); a method that cannot run is listed with the reason.

From Python, each study takes its settings as one frozen dataclass: ``selection_study(SelectionStudy(...))``,
``difficulty_study(DifficultyStudy(...))``. The package: ``common.py`` (logging, writes, loading), ``selection.py``,
``tracking.py`` (the difficulty study), ``command.py`` (the flags, turned into those settings in ``run_from_args``).
"""
from __future__ import annotations

from .command import add_arguments, difficulty_settings, run_from_args, selection_settings
from .selection import (RULES, SelectionStudy, crossover, eval_epochs_for, pick_by_rule, pool_indices,
                        selection_study, write_selection_outputs)
from .tracking import GM_METHODS, TM_METHODS, DifficultyStudy, difficulty_study, write_difficulty_outputs

__all__ = ["add_arguments", "run_from_args", "selection_study", "difficulty_study", "SelectionStudy",
           "DifficultyStudy", "selection_settings", "difficulty_settings", "eval_epochs_for", "pick_by_rule",
           "pool_indices", "crossover", "write_selection_outputs", "write_difficulty_outputs", "RULES", "GM_METHODS",
           "TM_METHODS"]
