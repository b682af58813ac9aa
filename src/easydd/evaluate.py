"""The evaluation protocol: train networks from scratch on a distilled set, test them on the full test set.

Reference protocol (DC/DSA/DM papers): SGD momentum 0.9, weight decay 5e-4, batch 256, learning rate 0.01 (or the
set's learned rate), 1000 epochs with augmentation or 300 without, learning rate x0.1 at half. The augmentation
(``aug``): ``dsa`` (DSA, DM, trajectory matching), ``dc`` (the DC code's one-of crop/scale/rotate, which it uses for
MNIST only), ``crop`` (translation by up to 4 px, plus a flip on natural images), ``none``. Accuracy is
the FINAL epoch's: no checkpoint is ever chosen on the test set (the trajectory-matching reference code reports
the maximum over test-set checkpoints; we do not).
"""
from __future__ import annotations

import math
import time

from tqdm.auto import tqdm

from .augment import DSA, DCAugment, PlainAugment, default_strategy
from .distilled import Distilled
from .errors import UserError
from .runtime import derive_seed, resolve_device
from .train import Ensemble, TrainSpec, nan_safe_mean_std


EVAL_AUGS = ("dsa", "dc", "crop", "none")


def eval_augment(dataset_name: str, aug: str):
    """The training-time augmentation of an evaluation network (None: none)."""
    if aug == "dsa":
        return DSA(default_strategy(dataset_name))
    if aug == "dc":
        return DCAugment()
    if aug == "crop":
        return PlainAugment(flip=dataset_name not in ("mnist", "fashion_mnist", "svhn", "digits"))
    if aug == "none":
        return None
    raise UserError(f"unknown evaluation augmentation {aug!r}; choose from {', '.join(EVAL_AUGS)}")


def default_eval_epochs(aug: str) -> int:
    return 1000 if aug in ("dsa", "dc") else 300


def check_eval_settings(models=("ConvNet",), num_models: int = 5, epochs: int | None = None,
                        lr: float | None = None, batch_size: int = 256, aug: str = "dsa") -> None:
    """The evaluation settings, checked before any work (the CLI calls it before writing a run directory)."""
    def need(cond, msg):
        if not cond:
            raise UserError(msg)
    def is_int(v):
        return isinstance(v, int) and not isinstance(v, bool)
    need(is_int(num_models) and num_models >= 1, f"--num-models must be >= 1 (got {num_models!r})")
    need(epochs is None or (is_int(epochs) and epochs >= 1),
         f"--epochs must be >= 1 (got {epochs!r}); leave it out for the protocol's 1000 with augmentation (dsa, "
         "dc), 300 without")
    need(aug in EVAL_AUGS, f"--aug must be one of {', '.join(EVAL_AUGS)} (got {aug!r})")
    need(lr is None or (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0),
         f"--lr must be a finite number > 0 (got {lr!r}); leave it out for the set's learned rate or 0.01")
    need(is_int(batch_size) and batch_size >= 1, f"batch_size must be >= 1 (got {batch_size!r})")
    need(len(models) >= 1 and all(isinstance(m, str) and m for m in models), f"--models needs model names "
         f"(got {list(models)!r})")


def evaluate_distilled(distilled: Distilled, dataset, *, models=("ConvNet",), num_models: int = 5,
                       epochs: int | None = None, aug: str = "dsa", lr: float | None = None, batch_size: int = 256,
                       seed: int = 0, split: str = "test", progress: bool = True,
                       device: str | None = "auto", passes=None) -> dict:
    """Train ``num_models`` networks of each architecture on the set; report accuracy on ``split`` (test/val).
    ``passes``: a ``fastpass.RealPass`` (``fastpass.passes_for``) for the networks' training and test passes
    (bf16 autocast / compiled); None: eager fp32, the reference numerics."""
    check_eval_settings(models, num_models, epochs, lr, batch_size, aug)
    if lr is None and distilled.lr is not None and not (math.isfinite(distilled.lr) and distilled.lr > 0):
        raise UserError(f"the set's learned learning rate is {distilled.lr} (its run diverged?); evaluate it with "
                        "--lr VALUE (e.g. --lr 0.01), or re-create the set")
    if len(distilled) == 0:
        raise UserError("the distilled set holds no images; re-create it with `easydd distill` or `easydd select`")
    x_eval = dataset.x_test if split == "test" else dataset.x_val
    if x_eval.shape[0] == 0:
        raise UserError(f"the {split} split of {dataset.name} holds no images, so there is nothing to measure "
                        f"accuracy on" + (" (set val_size > 0)" if split == "val" else "; add test images"))
    device = resolve_device(device)
    epochs = epochs if epochs is not None else default_eval_epochs(aug)
    lr = lr if lr is not None else (distilled.lr if distilled.lr is not None else 0.01)
    x_eval, y_eval = (dataset.x_test, dataset.y_test) if split == "test" else (dataset.x_val, dataset.y_val)
    augment = eval_augment(dataset.name, aug)
    result = {"split": split, "epochs": epochs, "lr": lr, "aug": aug, "num_models": num_models,
              "batch_size": batch_size, "seed": seed, "device": str(device),
              "precision": "bf16" if passes is not None and passes.bf16 else "fp32",
              "compile": bool(passes is not None and passes.compile), "models": {}}
    for m_i, model in enumerate(models):
        seeds = [derive_seed(seed, "eval", model, i) for i in range(num_models)]
        t0 = time.perf_counter()
        ens = Ensemble(model, dataset.shape[0], dataset.num_classes, dataset.shape[1:], seeds, device=device)
        bar = tqdm(total=epochs * num_models, desc=f"eval {model} x{num_models}", disable=not progress,
                   leave=False, unit="epoch", dynamic_ncols=True)  # counts model-epochs
        ens.train(distilled.images.detach(), distilled.labels.detach(),
                  TrainSpec(epochs=epochs, lr=lr, batch_size=batch_size), aug=augment,
                  seed=derive_seed(seed, "eval-train", model), progress=bar, passes=passes)
        bar.close()
        accs = ens.accuracy(x_eval, y_eval, passes=passes).tolist()
        mean, std = nan_safe_mean_std(accs)
        result["models"][model] = {"accs": accs, "mean": mean, "std": std, "seconds": time.perf_counter() - t0}
    return result


def format_result(result: dict) -> str:
    lines = []
    for model, r in result["models"].items():
        lines.append(f"{model:>12s}: {100 * r['mean']:.2f} +- {100 * r['std']:.2f} % ({result['split']}, "
                     f"{len(r['accs'])} models, {result['epochs']} epochs, aug {result.get('aug', '?')}, "
                     f"{r['seconds']:.0f} s)")
    return "\n".join(lines)
