"""The student's unroll and its gradients, as plain functions: the trajectory-matching methods
(``easydd.methods.trajectory``) call them, the tests check them against each other.

The student starts at an expert checkpoint theta*_t and takes SGD steps theta_{k+1} = theta_k - alpha * g_k on
batches of the synthetic set; the matching loss compares theta_N with the expert's theta*_{t+M}.

- ``unroll``: the differentiable unroll (the whole graph, MTT's reference gradient).
- ``tesla_gradients``: TESLA's constant-memory gradient of the same loss. Pass 1 runs the unroll without any graph
  to the synthetic data and keeps only the step batches (indices + augmentation parameters) and the running sum G of
  the step gradients; pass 2 recomputes each step's gradient (with its graph) and back-propagates into that step's
  images at once, so only one step's graph is ever alive. The default (``exact=False``) is TESLA's published
  gradient: every step receives the final adjoint lambda_N = dL/dtheta_N, i.e. the second-order terms (I - alpha
  H_j) between step k and the end are dropped; it equals EXACTLY the gradient of the unroll in which each g_k is
  evaluated at a stop-gradient copy of theta_k (identical to the full unroll for one step). ``exact=True`` runs pass
  2 backwards with the true adjoint lambda_k = lambda_{k+1} + d/dtheta_k [-alpha <lambda_{k+1}, g_k>] (a Hessian-
  vector product per step), which reproduces the full unroll's gradient; it keeps theta_k for every step (syn_steps
  x num_params floats, no activations).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..train import soft_cross_entropy
from .base import flat_norm


@dataclass
class Step:
    """One student step: which synthetic images (indices) and their augmentation parameters."""
    idx: torch.Tensor
    plan: object = None


def step_inputs(images, labels, step: Step, aug):
    x = images[step.idx]
    if aug is not None and step.plan is not None:
        x = aug.apply(x, step.plan)
    return x, labels[step.idx]


def matching_loss(theta_n, start, target) -> torch.Tensor:
    """||theta_N - theta*_{t+M}||^2 / ||theta*_t - theta*_{t+M}||^2."""
    return ((theta_n - target) ** 2).sum() / ((start - target) ** 2).sum()


def unroll(fwd, start, steps, images, labels, lr, aug=None, sdc_graph: bool = False):
    """The differentiable unroll: (theta_N, [||g_k||]). ``fwd(theta, x)`` -> logits. The norms are in the graph
    only when ``sdc_graph`` (the SDC penalty needs them); otherwise they are detached values for the log."""
    theta = start.detach().requires_grad_(True)
    norms = []
    for st in steps:
        x, y = step_inputs(images, labels, st, aug)
        g = torch.autograd.grad(soft_cross_entropy(fwd(theta, x), y), theta, create_graph=True)[0]
        norms.append(flat_norm([g]) if sdc_graph else flat_norm([g.detach()]))
        theta = theta - lr * g
    return theta, norms


# long: TESLA's two passes share the trajectory, adjoint and gradient buffers; its math reads best in one place
def tesla_gradients(fwd, start, target, steps, images, labels, lr, aug=None, *, lam_sdc: float = 0.0,
                    exact: bool = False, learn_labels: bool = False, learn_lr: bool = True) -> dict:
    """TESLA's constant-memory gradient of  L + lam_sdc * R  (batch-mode R = mean_k ||g_k||).

    Returns {'loss', 'sdc', 'images' (grad, shape of images), 'labels' (grad or None), 'lr' (grad or None)}.
    exact=False: TESLA's first-order gradient (adjoint lambda_N at every step). exact=True: the true reverse-mode
    adjoint (equal to the full unroll's gradient up to rounding); keeps theta_k for all steps.
    """
    lr_v = lr.detach()
    n = len(steps)
    img_d, lab_d = images.detach(), labels.detach()
    denom = ((start - target) ** 2).sum()
    # pass 1: the trajectory; no graph to the synthetic data; keep only G (and theta_k when exact)
    theta = start.detach()
    grad_sum = torch.zeros_like(theta)
    thetas, norms = [], []
    for st in steps:
        if exact:
            thetas.append(theta)
        x, y = step_inputs(img_d, lab_d, st, aug)
        th = theta.detach().requires_grad_(True)
        g = torch.autograd.grad(soft_cross_entropy(fwd(th, x), y), th)[0]
        norms.append(flat_norm([g]))
        grad_sum += g
        theta = theta - lr_v * g
    loss = ((theta - target) ** 2).sum() / denom
    adj = 2 * (theta - target) / denom          # lambda_N = dL/dtheta_N
    img_grad = torch.zeros_like(img_d)
    lab_grad = torch.zeros_like(lab_d) if learn_labels else None
    lr_grad = torch.zeros((), dtype=theta.dtype, device=theta.device)

    def backprop_step(st, th, adj_k, want_theta):
        xs = img_d[st.idx].requires_grad_(True)
        ys = lab_d[st.idx]
        if learn_labels:
            ys = ys.requires_grad_(True)
        x = aug.apply(xs, st.plan) if (aug is not None and st.plan is not None) else xs
        g = torch.autograd.grad(soft_cross_entropy(fwd(th, x), ys), th, create_graph=True)[0]
        phi = -lr_v * (adj_k * g).sum()
        if lam_sdc > 0:
            phi = phi + (lam_sdc / n) * flat_norm([g])
        inputs = ([th] if want_theta else []) + [xs] + ([ys] if learn_labels else [])
        grads = torch.autograd.grad(phi, inputs)
        off = 1 if want_theta else 0
        img_grad.index_add_(0, st.idx, grads[off])
        if learn_labels:
            lab_grad.index_add_(0, st.idx, grads[off + 1])
        return g.detach(), (grads[0] if want_theta else None)

    if not exact:
        lr_grad = -(adj * grad_sum).sum()
        theta = start.detach()
        for st in steps:  # forward order: theta_k is recomputed, nothing per step is stored
            th = theta.detach().requires_grad_(True)
            g, _ = backprop_step(st, th, adj, False)
            theta = theta - lr_v * g
    else:
        for k in reversed(range(n)):
            th = thetas[k].detach().requires_grad_(True)
            g, d_theta = backprop_step(steps[k], th, adj, True)
            lr_grad = lr_grad - (adj * g).sum()
            adj = adj + d_theta
    return {"loss": loss, "sdc": torch.stack(norms).mean(), "images": img_grad, "labels": lab_grad,
            "lr": lr_grad if learn_lr else None}
