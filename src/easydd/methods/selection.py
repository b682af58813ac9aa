"""Selection baselines: a distilled set made of real training images, chosen per class.

- random: a seeded random subset.
- herding: greedy feature-mean matching (Welling 2009): repeatedly add the image that brings the running mean of
  the selected features closest to the class mean.
- kcenter: greedy k-center (farthest point) in feature space, started from the image nearest the class mean.
- easiest / hardest: the smallest / largest GraDN, measured on a reference panel (see easydd.difficulty).

Features for herding and k-center come from a ConvNet briefly trained on the real training data
(``feature_epochs`` epochs on ``feature_subset`` images), the usual choice in coreset baselines.
"""
from __future__ import annotations

import torch

from ..distilled import Distilled
from ..errors import UserError
from ..runtime import derive_seed, generator
from ..train import Ensemble, TrainSpec
from .base import data_path

SELECTION_METHODS = ("random", "herding", "kcenter", "easiest", "hardest")


def check_ipc(dataset, ipc: int) -> None:
    if ipc < 1:
        raise UserError(f"ipc must be at least 1 (got {ipc})")
    counts = torch.bincount(dataset.y_train, minlength=dataset.num_classes)
    smallest = int(counts.min())
    if ipc > smallest:
        c = int(counts.argmin())
        raise UserError(f"ipc={ipc} is larger than class {c} of {dataset.name}, which has {smallest} training images; "
                        f"use --ipc {smallest} or less")


def feature_extractor(dataset, seed: int, model: str = "ConvNet", epochs: int = 1, subset: int = 10000):
    g = generator(derive_seed(seed, "features"))
    idx = torch.randperm(dataset.x_train.shape[0], generator=g)[:subset]
    ens = Ensemble(model, dataset.shape[0], dataset.num_classes, dataset.shape[1:], [derive_seed(seed, "fnet")])
    ens.train(dataset.x_train[idx], dataset.y_train[idx], TrainSpec(epochs=epochs, lr=0.01, decay_at_half=False),
              seed=derive_seed(seed, "ftrain"))
    net = ens.nets[0].eval()

    @torch.no_grad()
    def embed(x):
        return torch.cat([net.embed(x[i:i + 1000]) for i in range(0, x.shape[0], 1000)])
    return embed


def herding(features: torch.Tensor, k: int) -> list[int]:
    mu = features.mean(0)
    chosen: list[int] = []
    running = torch.zeros_like(mu)
    available = torch.ones(features.shape[0], dtype=torch.bool)
    for t in range(k):
        # mean after adding candidate i: (running * t + f_i) / (t + 1)
        cand = (running * t + features) / (t + 1)
        dist = (cand - mu).norm(dim=1)
        dist[~available] = float("inf")
        i = int(dist.argmin())
        chosen.append(i)
        available[i] = False
        running = cand[i]
    return chosen


def kcenter(features: torch.Tensor, k: int) -> list[int]:
    mu = features.mean(0)
    first = int((features - mu).norm(dim=1).argmin())
    chosen = [first]
    mind = (features - features[first]).norm(dim=1)
    for _ in range(k - 1):
        i = int(mind.argmax())
        chosen.append(i)
        mind = torch.minimum(mind, (features - features[i]).norm(dim=1))
    return chosen


def candidates(dataset, c: int, pool: int | None, ipc: int, seed: int) -> torch.Tensor:
    """Training indices of class ``c`` that selection may pick: all, or a seeded pool of ``pool`` of them."""
    idx = dataset.class_indices(c)
    if pool is not None and pool < len(idx):
        idx = idx[torch.randperm(len(idx), generator=generator(derive_seed(seed, "pool", c)))[:max(pool, ipc)]]
    return idx


def select(dataset, method: str, ipc: int, seed: int = 0, panel=None, progress: bool = True,
           pool: int | None = None) -> Distilled:
    """Choose ``ipc`` real training images per class by ``method``; returned as a ``Distilled`` set.

    ``pool``: consider only a seeded random subset of this many images per class (None: all), which bounds the
    cost of feature extraction and difficulty scoring on large datasets."""
    if method not in SELECTION_METHODS:
        raise UserError(f"unknown selection method {method!r}; choose one of {', '.join(SELECTION_METHODS)}")
    check_ipc(dataset, ipc)
    g = generator(derive_seed(seed, "select", method))
    embed = feature_extractor(dataset, seed) if method in ("herding", "kcenter") else None
    scores = None
    if method in ("easiest", "hardest"):
        from ..difficulty import reference_panel
        panel = panel or reference_panel(dataset, seed=seed)
        scores = torch.full((dataset.x_train.shape[0],), float("nan"))
        for c in range(dataset.num_classes):  # score only the candidates (the pool), class by class
            idx = candidates(dataset, c, pool, ipc, seed)
            scores[idx] = panel.gradn(dataset.x_train[idx], dataset.y_train[idx])
    picked = []
    for c in range(dataset.num_classes):
        idx = candidates(dataset, c, pool, ipc, seed)
        if method == "random":
            sel = idx[torch.randperm(len(idx), generator=g)[:ipc]]
        elif method in ("herding", "kcenter"):
            f = embed(dataset.x_train[idx])
            local = herding(f, ipc) if method == "herding" else kcenter(f, ipc)
            sel = idx[torch.tensor(local)]
        else:
            s = scores[idx]
            order = torch.argsort(s, descending=(method == "hardest"))
            sel = idx[order[:ipc]]
        picked.append(sel)
    sel = torch.cat(picked)
    return Distilled(dataset.x_train[sel].clone(), dataset.y_train[sel].clone(), None,
                     {"dataset": dataset.name, "ipc": ipc, "method": method, "kind": "selection", "seed": seed,
                      "indices": sel.tolist(), "mean": list(dataset.mean), "std": list(dataset.std),
                      "zca": dataset.zca is not None, **data_path(dataset)})
