"""Networks used by the distillation literature, by name.

Every network is ``features`` (a Sequential or module) followed by ``classifier`` (a Linear); ``embed(x)``
returns the flattened features (distribution matching uses it) and ``forward(x)`` the logits. All are plain
``nn.Module`` objects, so ``torch.func.functional_call`` works on them for unrolled training.

Names follow the reference code: ``ConvNet`` (depth 3, width 128, instance norm, ReLU, average pooling),
``ConvNetD1``..``ConvNetD5`` (depth), ``ConvNetW32``..``ConvNetW256`` (width), ``ConvNetBN``/``LN``/``GN``/``NN``
(norm: batch, layer, group(4), none), ``ConvNetMP`` (max pooling), ``ConvNetSigmoid``/``LeakyReLU`` (activation),
``LeNet``, ``AlexNet`` (+``BN``), ``VGG11`` (+``BN``), ``ResNet18`` (+``BN``, ``_AP``, ``BN_AP``), ``MLP``.
"instancenorm" is ``GroupNorm(C, C, affine=True)`` as in the reference implementations.
"""
from __future__ import annotations

import contextlib
import re

import torch
import torch.nn as nn
import torch.nn.functional as F

NORMS = ("instancenorm", "batchnorm", "layernorm", "groupnorm", "none")
ACTS = ("relu", "sigmoid", "leakyrelu")
POOLS = ("avgpool", "maxpool", "none")


from .errors import UnknownModel  # noqa: E402,F401  (defined with the other user errors; re-exported here)


def _norm(kind: str, channels: int, hw: tuple[int, int]) -> nn.Module:
    if kind == "instancenorm":
        return nn.GroupNorm(channels, channels, affine=True)
    if kind == "batchnorm":
        return nn.BatchNorm2d(channels)
    if kind == "layernorm":
        return nn.LayerNorm([channels, hw[0], hw[1]], elementwise_affine=True)
    if kind == "groupnorm":
        return nn.GroupNorm(4, channels, affine=True)
    if kind == "none":
        return nn.Identity()
    raise UnknownModel(f"unknown norm {kind!r}; choose one of {', '.join(NORMS)}")


def _act(kind: str) -> nn.Module:
    return {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "leakyrelu": lambda: nn.LeakyReLU(0.01)}[kind]()


class Net(nn.Module):
    """features -> flatten -> classifier, with ``embed`` for feature-space methods."""

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.features(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


class ConvNet(Net):
    def __init__(self, channel, num_classes, im_size, width=128, depth=3, norm="instancenorm", act="relu",
                 pool="avgpool"):
        super().__init__()
        if norm not in NORMS:
            raise UnknownModel(f"unknown norm {norm!r}; choose one of {', '.join(NORMS)}")
        if act not in ACTS:
            raise UnknownModel(f"unknown activation {act!r}; choose one of {', '.join(ACTS)}")
        if pool not in POOLS:
            raise UnknownModel(f"unknown pooling {pool!r}; choose one of {', '.join(POOLS)}")
        layers: list[nn.Module] = []
        c, (h, w) = channel, im_size
        if im_size[0] == 28:  # the reference pads MNIST-sized inputs to 32 in the first conv
            h, w = 32, 32
        for d in range(depth):
            layers.append(nn.Conv2d(c, width, 3, padding=3 if (channel == 1 and d == 0 and im_size[0] == 28) else 1))
            c = width
            if norm != "none":
                layers.append(_norm(norm, c, (h, w)))
            layers.append(_act(act))
            if pool != "none":
                layers.append(nn.AvgPool2d(2, 2) if pool == "avgpool" else nn.MaxPool2d(2, 2))
                h, w = h // 2, w // 2
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(c * h * w, num_classes)


class MLP(Net):
    def __init__(self, channel, num_classes, im_size, width=128):
        super().__init__()
        self.features = nn.Sequential(nn.Flatten(), nn.Linear(channel * im_size[0] * im_size[1], width), nn.ReLU(),
                                      nn.Linear(width, width), nn.ReLU())
        self.classifier = nn.Linear(width, num_classes)


class LeNet(Net):
    def __init__(self, channel, num_classes, im_size):
        super().__init__()
        pad = 2 if im_size[0] == 28 else 0
        self.features = nn.Sequential(
            nn.Conv2d(channel, 6, 5, padding=pad), nn.ReLU(), nn.MaxPool2d(2, 2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2, 2), nn.Flatten(),
            nn.Linear(16 * _lenet_side(im_size[0]) ** 2, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU())
        self.classifier = nn.Linear(84, num_classes)


def _lenet_side(s: int) -> int:
    s = 32 if s == 28 else s
    return ((s - 4) // 2 - 4) // 2


class AlexNet(Net):
    """The small AlexNet of the DC reference code."""

    def __init__(self, channel, num_classes, im_size, norm="none"):
        super().__init__()
        s = 32 if im_size[0] == 28 else im_size[0]

        def nrm(c, side):
            return [] if norm == "none" else [_norm(norm, c, (side, side))]

        self.features = nn.Sequential(
            nn.Conv2d(channel, 128, 5, padding=4 if im_size[0] == 28 else 2), *nrm(128, s), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(128, 192, 5, padding=2), *nrm(192, s // 2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(192, 256, 3, padding=1), *nrm(256, s // 4), nn.ReLU(),
            nn.Conv2d(256, 192, 3, padding=1), *nrm(192, s // 4), nn.ReLU(),
            nn.Conv2d(192, 192, 3, padding=1), *nrm(192, s // 4), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Linear(192 * (s // 8) ** 2, num_classes)


class VGG11(Net):
    CFG = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")

    def __init__(self, channel, num_classes, im_size, norm="instancenorm"):
        super().__init__()
        layers: list[nn.Module] = []
        c, s = channel, (32 if im_size[0] == 28 else im_size[0])
        for i, v in enumerate(self.CFG):
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
                s //= 2
            else:
                layers += [nn.Conv2d(c, v, 3, padding=3 if (channel == 1 and i == 0 and im_size[0] == 28) else 1),
                           _norm(norm, v, (s, s)), nn.ReLU()]
                c = v
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(512 * s * s, num_classes)


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride, norm, side, avgpool_down):
        super().__init__()
        conv_stride = 1 if avgpool_down else stride
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=conv_stride, padding=1, bias=False)
        self.pool = nn.AvgPool2d(2, 2) if (avgpool_down and stride != 1) else nn.Identity()
        side = side // stride
        self.bn1 = _norm(norm, cout, (side, side))
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = _norm(norm, cout, (side, side))
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            down = ([nn.Conv2d(cin, cout, 1, bias=False), nn.AvgPool2d(2, 2)] if avgpool_down and stride != 1
                    else [nn.Conv2d(cin, cout, 1, stride=stride, bias=False)])
            self.shortcut = nn.Sequential(*down, _norm(norm, cout, (side, side)))

    def forward(self, x):
        out = F.relu(self.bn1(self.pool(self.conv1(x))))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(Net):
    """CIFAR-stem ResNet-18 (3x3 first conv, no max pool); ``avgpool_down`` is the reference's ``_AP`` variant."""

    def __init__(self, channel, num_classes, im_size, norm="instancenorm", avgpool_down=False):
        super().__init__()
        side = im_size[0]
        layers: list[nn.Module] = [nn.Conv2d(channel, 64, 3, padding=1, bias=False), _norm(norm, 64, (side, side)),
                                   nn.ReLU()]
        cin = 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            for s in (stride, 1):
                layers.append(BasicBlock(cin, cout, s, norm, side, avgpool_down))
                side //= s
                cin = cout
        layers.append(nn.AdaptiveAvgPool2d(1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(512, num_classes)


_CONVNET_VARIANTS = {
    "BN": dict(norm="batchnorm"), "LN": dict(norm="layernorm"), "GN": dict(norm="groupnorm"),
    "NN": dict(norm="none"), "IN": dict(norm="instancenorm"), "AP": dict(pool="avgpool"), "MP": dict(pool="maxpool"),
    "NP": dict(pool="none"), "Sigmoid": dict(act="sigmoid"), "ReLU": dict(act="relu"),
    "LeakyReLU": dict(act="leakyrelu"),
}

MODEL_NAMES = ("ConvNet", "ConvNetD1", "ConvNetD2", "ConvNetD3", "ConvNetD4", "ConvNetD5", "ConvNetW32",
               "ConvNetW64", "ConvNetW128", "ConvNetW256", "ConvNetBN", "ConvNetLN", "ConvNetGN", "ConvNetNN",
               "ConvNetMP", "ConvNetSigmoid", "ConvNetLeakyReLU", "LeNet", "AlexNet", "AlexNetBN", "VGG11",
               "VGG11BN", "ResNet18", "ResNet18BN", "ResNet18_AP", "ResNet18BN_AP", "MLP")


def _convnet_kwargs(name: str) -> dict | None:
    """Parse ``ConvNet[D<depth>][W<width>][<variant>]``; None if the name is not a ConvNet."""
    m = re.fullmatch(r"ConvNet(?:D(\d))?(?:W(\d+))?(BN|LN|GN|NN|IN|AP|MP|NP|Sigmoid|ReLU|LeakyReLU)?", name)
    if m is None:
        return None
    kw: dict = {}
    if m.group(1):
        kw["depth"] = int(m.group(1))
    if m.group(2):
        kw["width"] = int(m.group(2))
    if m.group(3):
        kw.update(_CONVNET_VARIANTS[m.group(3)])
    return kw


def build_network(name: str, channel: int, num_classes: int, im_size: tuple[int, int], **overrides) -> Net:
    """Build a network by its reference name. ``overrides`` go to the ConvNet constructor (width, depth, ...)."""
    kw = _convnet_kwargs(name)
    if kw is not None:
        kw.update(overrides)
        return ConvNet(channel, num_classes, tuple(im_size), **kw)
    table = {
        "MLP": lambda: MLP(channel, num_classes, im_size),
        "LeNet": lambda: LeNet(channel, num_classes, im_size),
        "AlexNet": lambda: AlexNet(channel, num_classes, im_size),
        "AlexNetBN": lambda: AlexNet(channel, num_classes, im_size, norm="batchnorm"),
        "VGG11": lambda: VGG11(channel, num_classes, im_size),
        "VGG11BN": lambda: VGG11(channel, num_classes, im_size, norm="batchnorm"),
        "ResNet18": lambda: ResNet18(channel, num_classes, im_size),
        "ResNet18BN": lambda: ResNet18(channel, num_classes, im_size, norm="batchnorm"),
        "ResNet18_AP": lambda: ResNet18(channel, num_classes, im_size, avgpool_down=True),
        "ResNet18BN_AP": lambda: ResNet18(channel, num_classes, im_size, norm="batchnorm", avgpool_down=True),
    }
    if name not in table:
        raise UnknownModel(f"unknown model {name!r}; choose one of: {', '.join(MODEL_NAMES)} "
                           "(ConvNet also takes D<depth>, W<width> and a norm/act/pool suffix, e.g. ConvNetD4W64)")
    return table[name]()


def make_network(name: str, channel: int, num_classes: int, im_size, seed: int, **overrides) -> Net:
    """Build a network whose initial weights depend only on ``seed``.

    torch's layer initialisers draw from the global generator; we fork it, seed the fork, and restore the caller's
    state on exit, so building a network never changes any other random stream in the program.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return build_network(name, channel, num_classes, tuple(im_size), **overrides)


def has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@contextlib.contextmanager
def frozen_batchnorm(model: nn.Module):
    """Use running statistics in every BatchNorm layer (the reference's treatment of BN during matching)."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    modes = [m.training for m in bns]
    for m in bns:
        m.eval()
    try:
        yield model
    finally:
        for m, t in zip(bns, modes):
            m.train(t)
