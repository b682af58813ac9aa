"""Theory, simulated: data pruning and dataset distillation in the teacher-student perceptron.

The model is the one of Sorscher et al. 2022 ("Beyond neural scaling laws: beating power law scaling via data
pruning"):

* teacher ``T ~ N(0, I_N)``, inputs ``x ~ N(0, I_N)``, labels ``y = sign(T . x)``, ``P = alpha_total * N`` examples;
* a *probe* student ``J_p`` at angle ``theta_p`` from ``T`` scores every example by its margin ``|J_p . x|``
  (large margin = EASY, small margin = HARD);
* a fraction ``f`` of the examples is kept (the easiest, the hardest, or a random subset), ``alpha_prune = f *
  alpha_total``, and a student is trained on it (max-margin by default);
* the generalisation error of a student ``J`` is exactly ``arccos(cos(J, T)) / pi`` for Gaussian inputs.

The known result: when the kept budget is small, keeping the EASY examples is better; when it is large, keeping the
HARD examples is better (and beats the power law), and the cross-over moves with ``alpha_total``.

Distillation extension (our construction, documented in docs/theory.md): a synthetic set of ``M`` points with fixed,
balanced labels is learned for the same linear student with logistic loss, either by *gradient matching* (DC-style
``1 - cos`` between the synthetic and the full-data loss gradients, at students re-initialised at random and trained
on the synthetic set, as DC does; or at expert checkpoints / random directions as variants) or by *trajectory
matching* (MTT-style: unroll a few differentiable GD steps on the synthetic set from a checkpoint of an expert GD
trajectory on the full data and match the expert a few steps later). The SDC easiness penalty adds
``lambda * mean_i ||d/dw loss(w; x_i, y_i)||`` (the mean per-sample gradient norm of the synthetic points at the
same student weights) to the matching loss. Synthetic points are kept on the sphere ``||x|| = sqrt(N)`` (where real
Gaussian inputs live), so the penalty cannot be satisfied by shrinking the points; it can only move them away from the
decision boundaries of the students, i.e. make them easier (``lambda < 0`` makes them harder).

All randomness goes through explicit ``numpy.random.Generator`` / ``torch.Generator`` objects; no global RNG is used.
This package imports nothing else from easydd but ``easydd.io.atomic_write``. Command line: ``easydd theory ...``
(via :func:`add_arguments` and :func:`run_from_args`) or ``python -m easydd.paper.theory ...``.

The package, bottom to top: ``model.py`` (teacher, data, probe, pruning, students, test error),
``distillation.py`` (expert trajectories, GraDN, :func:`distill_linear`), ``sweeps.py`` (the two sweeps and their
summaries), ``figure.py`` and ``outputs.py`` (theory.png, .csv, .md, .json), ``command.py`` (the flags).
"""

from __future__ import annotations

from .command import add_arguments, cli, main, run_from_args
from .distillation import DistillResult, distill_linear, expert_trajectories, grad_norm_panel
from .model import margins, probe, prune, teacher_student, test_error, train_student
from .outputs import write_outputs
from .sweeps import MODES, crossovers, run_distillation_sweep, run_pruning_sweep, sdc_effects, summarize

__all__ = [
    "teacher_student",
    "probe",
    "margins",
    "prune",
    "train_student",
    "test_error",
    "DistillResult",
    "expert_trajectories",
    "distill_linear",
    "grad_norm_panel",
    "run_pruning_sweep",
    "run_distillation_sweep",
    "MODES",
    "sdc_effects",
    "summarize",
    "crossovers",
    "write_outputs",
    "add_arguments",
    "run_from_args",
    "cli",
    "main",
]
