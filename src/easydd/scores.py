"""DD-Ranking's scores, written here from their published definitions (docs/scores.md says how each is computed
and how it differs from DD-Ranking's released code).

All accuracies are FRACTIONS in [0, 1] (test split, final epoch, mean over the evaluation networks):

    HLR  = acc(real, hard) - acc(syn, hard)            hard-label recovery: what is left to recover (lower is better)
    IOR  = acc(syn, its labels) - acc(random, same)    improvement over random real images at the same IPC
    LRS  = (exp(a) - exp(-1)) / (e - exp(-1)),  a = w * IOR - (1 - w) * HLR                 label-robust score
    ARS  = (exp(b) - exp(-1)) / (e - exp(-1)),  b = g * (acc(syn, aug) - acc(random, aug))
                                                  + (1 - g) * (acc(syn, no aug) - acc(random, no aug))

HLR and IOR are differences of fractions, so they lie in [-1, 1]; a and b do too, which puts LRS and ARS in
[0, 1] (0.269 when a = 0). The full-data and random-subset accuracies depend only on (dataset, model, protocol)
and are cached under ``<cache>/scores/`` (``$EASYDD_CACHE``, as for datasets).
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import torch

from .errors import UserError

VERSION = 1
TEACHER_SEED = 2  # the teacher that soft-labels random subsets: disjoint from the panel (seed 0) and SDC pool (1)
_E, _INV_E = math.e, math.exp(-1.0)


def hlr(acc_real_hard: float, acc_syn_hard: float) -> float:
    return acc_real_hard - acc_syn_hard


def ior(acc_syn_any: float, acc_rdm_any: float) -> float:
    return acc_syn_any - acc_rdm_any


def _squash(x: float) -> float:
    """[-1, 1] -> [0, 1] through (e^x - e^-1) / (e - e^-1)."""
    return (math.exp(x) - _INV_E) / (_E - _INV_E)


def _check_fraction(name: str, v: float) -> None:
    if not (isinstance(v, (int, float)) and 0.0 <= v <= 1.0):
        raise ValueError(f"{name} must be an accuracy in [0, 1] (a fraction, not a percentage); got {v!r}")


def label_robust_score(hlr_value: float, ior_value: float, w: float = 0.5) -> float:
    if not 0.0 <= w <= 1.0:
        raise ValueError(f"w must be in [0, 1] (got {w})")
    return _squash(w * ior_value - (1.0 - w) * hlr_value)


def augmentation_robust_score(syn_aug: float, rdm_aug: float, syn_naug: float, rdm_naug: float,
                              gamma: float = 0.5) -> float:
    for n, v in (("syn_aug", syn_aug), ("rdm_aug", rdm_aug), ("syn_naug", syn_naug), ("rdm_naug", rdm_naug)):
        _check_fraction(n, v)
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1] (got {gamma})")
    return _squash(gamma * (syn_aug - rdm_aug) + (1.0 - gamma) * (syn_naug - rdm_naug))


def ddranking_scores(acc: dict, w: float = 0.5, gamma: float = 0.5) -> dict:
    """The four scores from the six accuracies (fractions): real_hard, syn_hard, syn_any (= syn_aug),
    rdm_any (= rdm_aug), syn_naug, rdm_naug."""
    for k in ("real_hard", "syn_hard", "syn_aug", "rdm_aug", "syn_naug", "rdm_naug"):
        _check_fraction(k, acc[k])
    h, i = hlr(acc["real_hard"], acc["syn_hard"]), ior(acc["syn_aug"], acc["rdm_aug"])
    return {"HLR": h, "IOR": i, "LRS": label_robust_score(h, i, w),
            "ARS": augmentation_robust_score(acc["syn_aug"], acc["rdm_aug"], acc["syn_naug"], acc["rdm_naug"],
                                             gamma), "w": w, "gamma": gamma}


# -- the accuracies ----------------------------------------------------------------------------------------------

def _train_acc(x, y, dataset, model: str, seeds: list[int], epochs: int, lr: float, aug, seed: int, device,
               batch_size: int = 256) -> list[float]:
    from .runtime import derive_seed
    from .train import Ensemble, TrainSpec
    ens = Ensemble(model, dataset.shape[0], dataset.num_classes, dataset.shape[1:], seeds, device=device)
    ens.train(x.detach(), y.detach(), TrainSpec(epochs=epochs, lr=lr, batch_size=batch_size), aug=aug,
              seed=derive_seed(seed, "scores-train", model))
    return ens.accuracy(dataset.x_test, dataset.y_test).tolist()


def _cache_file(key: dict, cache_dir=None) -> Path:
    from .data.cache import default_cache_dir
    h = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return default_cache_dir(cache_dir) / "scores" / f"{key['kind']}-{key['dataset']}-{key['model']}-{h}.json"


def _cached(key: dict, compute, cache_dir=None, log=None) -> dict:
    """{'accs', 'mean', 'cached'}: read from the cache or computed and written there (atomically)."""
    from .distilled import atomic_write
    f = _cache_file(key, cache_dir)
    try:
        rec = json.loads(f.read_text())
        if rec.get("key") == key and isinstance(rec.get("accs"), list) and rec["accs"]:
            return {"accs": rec["accs"], "mean": sum(rec["accs"]) / len(rec["accs"]), "cached": str(f)}
    except (OSError, ValueError):
        pass
    if log:
        log(f"computing the {key['kind']} baseline once for {key['dataset']} / {key['model']} (cached in {f})")
    accs = compute()
    try:
        atomic_write(f, lambda tmp: Path(tmp).write_text(json.dumps({"key": key, "accs": accs}, indent=1)))
    except OSError:
        pass  # the cache only saves time
    return {"accs": accs, "mean": sum(accs) / len(accs), "cached": None}


def _random_set_teacher(distilled, dataset, model: str, full_epochs: int, cache_dir, device, log):
    """(teacher network or None, how the random baseline's images are labelled). "The same personalised
    evaluation": a set with soft labels is compared with random images that get soft labels too, from a teacher."""
    if not distilled.soft:
        return None, "hard"
    from .difficulty import reference_panel
    panel = reference_panel(dataset, model=model, num_models=1, epochs=full_epochs, seed=TEACHER_SEED,
                            subset=None, cache_dir=cache_dir, device=device, log=log)
    return panel.network(0), (f"teacher logits ({model}, {full_epochs} epoch(s) on the full split, panel "
                              f"{panel.meta.get('cache_key')})")


def evaluate_scores(distilled, dataset, *, model: str = "ConvNet", num_models: int = 5, epochs: int | None = None,
                    lr: float | None = None, full_epochs: int = 20, full_models: int = 1, seed: int = 0,
                    w: float = 0.5, gamma: float = 0.5, device="auto", cache_dir=None, log=print) -> dict:
    """Every accuracy the four scores need, under easydd's protocol (SGD momentum 0.9, wd 5e-4, batch 256, lr x0.1
    at half, final epoch, test split), and the scores. 'aug' is DSA, 'no aug' is none at all."""
    from .evaluate import eval_augment
    from .methods.selection import select
    from .runtime import derive_seed, resolve_device
    if full_epochs < 1 or full_models < 1 or num_models < 1:
        raise UserError("--full-epochs, full models and --num-models must be >= 1")
    device = resolve_device(device)
    epochs = epochs if epochs is not None else 1000
    syn_lr = lr if lr is not None else (distilled.lr if distilled.lr is not None else 0.01)
    aug = eval_augment(dataset.name, "dsa")
    ipc = distilled.ipc
    seeds = [derive_seed(seed, "scores", model, i) for i in range(num_models)]
    x, y = distilled.images, distilled.labels
    acc = {}
    acc["syn_aug"] = sum(a := _train_acc(x, y, dataset, model, seeds, epochs, syn_lr, aug, seed, device)) / len(a)
    acc["syn_hard"] = acc["syn_aug"] if not distilled.soft else sum(
        a := _train_acc(x, distilled.hard_labels, dataset, model, seeds, epochs, syn_lr, aug, seed, device)) / len(a)
    acc["syn_naug"] = sum(a := _train_acc(x, y, dataset, model, seeds, epochs, syn_lr, None, seed, device)) / len(a)
    base = {"dataset": dataset.name, "path": getattr(dataset, "path", None), "zca": dataset.zca is not None,
            "n_train": int(dataset.x_train.shape[0]), "model": model, "batch_size": 256, "momentum": 0.9,
            "weight_decay": 5e-4, "seed": seed, "version": VERSION}
    full_key = dict(base, kind="full", epochs=full_epochs, lr=0.01, aug="dsa", models=full_models)
    full = _cached(full_key, lambda: _train_acc(
        dataset.x_train, dataset.y_train, dataset, model, [derive_seed(seed, "scores-full", model, i)
                                                           for i in range(full_models)],
        full_epochs, 0.01, aug, seed, device), cache_dir, log)
    acc["real_hard"] = full["mean"]
    teacher, rdm_labels = _random_set_teacher(distilled, dataset, model, full_epochs, cache_dir, device, log)
    rdm = {}
    for name, a in (("aug", aug), ("naug", None)):
        key = dict(base, kind="random", ipc=ipc, epochs=epochs, lr=0.01, aug="dsa" if a else "none",
                   models=num_models, labels=rdm_labels)

        def compute(a=a):
            out = []
            for i in range(num_models):  # a fresh random subset for every network, as DD-Ranking's rounds
                r = select(dataset, "random", ipc, seed=derive_seed(seed, "scores-random", i), progress=False)
                y_r = r.labels
                if teacher is not None:
                    with torch.no_grad():
                        y_r = teacher(r.images.to(device)).detach().float().cpu()
                out += _train_acc(r.images, y_r, dataset, model, [seeds[i]], epochs, 0.01, a, seed, device)
            return out
        rdm[name] = _cached(key, compute, cache_dir, log)
    acc["rdm_aug"], acc["rdm_naug"] = rdm["aug"]["mean"], rdm["naug"]["mean"]
    scores = ddranking_scores(acc, w, gamma)
    return {"scores": scores, "accuracies": acc, "model": model, "num_models": num_models, "epochs": epochs,
            "syn_lr": syn_lr, "full_epochs": full_epochs, "full_models": full_models, "ipc": ipc,
            "soft_labels": distilled.soft, "random_labels": rdm_labels,
            "cache": {"full": full["cached"], "random_aug": rdm["aug"]["cached"],
                      "random_naug": rdm["naug"]["cached"]}}


def format_scores(r: dict) -> str:
    s, a = r["scores"], r["accuracies"]
    return (f"DD-Ranking scores ({r['model']}, {r['num_models']} models, {r['epochs']} epochs; accuracies as "
            f"fractions): HLR {s['HLR']:+.4f}  IOR {s['IOR']:+.4f}  LRS {s['LRS']:.4f}  ARS {s['ARS']:.4f}\n"
            f"  acc: full data {a['real_hard']:.4f} ({r['full_epochs']} epochs), syn hard {a['syn_hard']:.4f}, "
            f"syn {a['syn_aug']:.4f} / no aug {a['syn_naug']:.4f}, random {a['rdm_aug']:.4f} / no aug "
            f"{a['rdm_naug']:.4f}")


__all__ = ["hlr", "ior", "label_robust_score", "augmentation_robust_score", "ddranking_scores",
           "evaluate_scores", "format_scores"]
