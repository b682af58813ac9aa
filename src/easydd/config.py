"""Typed run configuration, YAML presets shipped in the package, ``key=value`` overrides, validation.

A run is described by ``RunConfig`` (what every method shares) plus ``method_args`` (the method's own
hyper-parameters, checked against that method's ``Params`` dataclass). Presets live in ``easydd/presets/*.yaml``:
each file is a mapping ``preset-name: {config}``; a preset may say ``base: other-preset`` to inherit.
Overrides are ``key=value`` with YAML values (``ipc=10``, ``lr_img=0.1``, ``eval_models=[ConvNet,MLP]``); a key
that is a method hyper-parameter may be written bare or as ``method_args.key``.
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import re
from dataclasses import dataclass, field
from importlib import resources

import yaml

from .errors import UserError


@dataclass
class RunConfig:
    dataset: str = "mnist"
    ipc: int = 1
    method: str = "dsa"
    model: str = "ConvNet"
    seed: int = 0
    iterations: int = 1000
    init: str = "real"                  # real | noise
    zca: bool = False
    data_root: str | None = None
    val_size: int | None = None
    lambda_sdc: float = 0.0             # weight of the Sample Difficulty Correction term (0 = base method)
    sdc_mode: str = "batch"             # batch | sample
    sdc_net: str = "trained"            # trained (a pool trained briefly on real data) | fresh (the method's own)
    sdc_ratio: float = 0.0              # >0: lambda set each update so ||d(lambda R)/dS|| / ||dL/dS|| ~ sdc_ratio
    sdc_pool: int = 4                   # networks in the trained pool (sdc_net=trained)
    sdc_pool_epochs: int = 1            # epochs each pool network is trained on (up to 10k) real images
    # evaluation at the end (reference protocol) and on the validation split during the run
    eval_models: list = field(default_factory=lambda: ["ConvNet"])
    eval_num_models: int = 5
    eval_epochs: int | None = None      # None: 1000 with augmentation (dsa, dc), 300 without (crop, none)
    eval_aug: str = "dsa"               # dsa | dc (the DC code's crop/scale/rotate) | crop (+-4 px) | none
    eval_precision: str = "fp32"        # fp32 | bf16: the evaluation networks' passes under bf16 autocast
    eval_compile: bool = False          # torch.compile the evaluation networks' passes (docs/speed.md)
    eval_every: int = 0                 # validate on the val split every k iterations (0: never)
    val_epochs: int = 300
    val_num_models: int = 2
    # difficulty tracking against a fixed reference panel
    track_every: int = 0                # 0: off
    panel_models: int = 4
    panel_epochs: int = 1
    checkpoint_every: int = 50
    device: str = "auto"                # auto (a CUDA GPU if visible, else cpu) | cpu | cuda[:i] | mps
    precision: str = "fp32"             # fp32 | bf16: the real-data passes under bf16 autocast (native bf16 only)
    compile: bool = False               # torch.compile the real-data passes (docs/speed.md)
    logger: str = "csv"                 # csv (curves.csv/.png) | tensorboard (also TensorBoard events, same folder)
    log_images_every: int = 50          # logger=tensorboard: the synthetic images every k iterations (0: at the end)
    name: str | None = None
    out_dir: str = "runs"
    method_args: dict = field(default_factory=dict)
    note: str = ""                      # what a preset cut, for the record

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


RUN_KEYS = {f.name for f in dataclasses.fields(RunConfig)}


def preset_files():
    return sorted(p for p in resources.files("easydd.presets").iterdir() if p.name.endswith(".yaml"))


_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser where installed: ~10x faster


@functools.lru_cache(maxsize=8)
def _parse_presets(files: tuple[tuple[str, str], ...]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for fname, text in files:
        data = yaml.load(text, Loader=_YAML_LOADER) or {}
        for k, v in data.items():
            out[k] = dict(v, _file=fname)
    return out


def all_presets() -> dict[str, dict]:
    """Every preset by name. The files are read on each call (cheap) but parsed once per content (the slow part),
    and the caller gets its own copy."""
    return copy.deepcopy(_parse_presets(tuple((p.name, p.read_text()) for p in preset_files())))


def load_preset(name: str) -> dict:
    presets = all_presets()
    if name not in presets:
        close = difflib.get_close_matches(name, presets, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UserError(f"unknown preset {name!r}{hint}; `easydd info` lists the presets")
    cfg = dict(presets[name])
    cfg.pop("_file", None)
    chain = [name]
    while "base" in cfg:
        base = cfg.pop("base")
        if base in chain:
            raise UserError(f"preset {name!r}: circular base chain {chain}")
        chain.append(base)
        parent = load_preset(base)
        margs = dict(parent.get("method_args", {}), **cfg.get("method_args", {}))
        parent.update(cfg)
        parent["method_args"] = margs
        cfg = parent
    return cfg


def parse_overrides(items: list[str]) -> dict:
    out: dict = {}
    for item in items:
        if "=" not in item:
            raise UserError(f"override {item!r} is not key=value (e.g. ipc=10 or lambda_sdc=0.01)")
        k, v = item.split("=", 1)
        try:
            val = yaml.safe_load(v) if v.strip() else None
        except yaml.YAMLError:
            val = v
        if isinstance(val, str) and re.fullmatch(r"\s*[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+\s*", val):
            val = float(val)  # YAML 1.1 reads 1e-3 (no dot) as a string; a number is meant
        out[k.strip()] = val
    return out


def build_config(preset: str | None = None, overrides: dict | None = None, method_params=None) -> RunConfig:
    """Preset (optional) + overrides -> validated RunConfig. ``method_params(method) -> dataclass type`` is used
    to route and check method hyper-parameters."""
    data = load_preset(preset) if preset else {}
    if "eval_dsa" in data or "eval_dsa" in (overrides or {}):  # the setting eval_aug replaced
        raise UserError("eval_dsa is now eval_aug: write eval_aug=dsa for eval_dsa=true, eval_aug=crop for "
                        "eval_dsa=false (eval_aug=dc: the DC code's MNIST augmentation; none: no augmentation)")
    margs = dict(data.pop("method_args", {}) or {})
    for k, v in (overrides or {}).items():
        if k == "method_args":  # a dict of method settings: merged over the preset's, like bare keys
            if not isinstance(v, dict):
                raise UserError(f"method_args must be a mapping of method settings, e.g. {{'lr_img': 0.1}} "
                                f"(got {type(v).__name__})")
            margs.update(v)
        elif k.startswith("method_args."):
            margs[k.split(".", 1)[1]] = v
        elif k in RUN_KEYS:
            data[k] = v
        else:
            margs[k] = v  # checked against the method's Params below
    bad_keys = [k for k in data if not isinstance(k, str)]
    if bad_keys:
        raise UserError(f"config keys must be names (got {bad_keys!r})")
    unknown_run = set(data) - RUN_KEYS
    if unknown_run:
        raise UserError(f"unknown config key(s) {sorted(unknown_run)}; valid: {sorted(RUN_KEYS)}")
    cfg = RunConfig(**data)
    _check_run_types(cfg)  # e.g. method=<empty> before the method's settings are looked up
    if method_params is not None:
        params_cls = method_params(cfg.method)
        names = {f.name for f in dataclasses.fields(params_cls)}
        bad = [k for k in margs if k not in names]
        if bad:
            sugg = {b: difflib.get_close_matches(b, names | RUN_KEYS, n=1) for b in bad}
            hint = "; ".join(f"{b!r}" + (f" (did you mean {s[0]!r}?)" if s else "") for b, s in sugg.items())
            raise UserError(f"unknown setting(s) for method {cfg.method!r}: {hint}. Run settings: "
                            f"{', '.join(sorted(RUN_KEYS))}; {cfg.method} settings: {', '.join(sorted(names))}")
        from .sdc import SDC_NETS, SDC_NETS_DEFAULT
        nets = getattr(params_cls, "sdc_nets", None) or SDC_NETS_DEFAULT
        if cfg.sdc_net in SDC_NETS and cfg.sdc_net not in nets:  # an unknown name: validate() says so
            raise UserError(f"sdc_net={cfg.sdc_net} is not available for {cfg.method}: choose one of "
                            f"{', '.join(nets)} (expert: trajectory matching only, R at the expert checkpoint the "
                            "student starts from)")
        params = _coerce(params_cls, margs)
        check_method_args(params)
        margs = dataclasses.asdict(params)
    cfg.method_args = margs
    validate(cfg)
    return cfg


def _coerce(params_cls, margs: dict):
    try:
        obj = params_cls(**margs)
    except TypeError as e:
        raise UserError(f"bad method settings: {e}") from None
    except ValueError as e:  # a Params class that checks its own values
        raise UserError(str(e)) from None
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        default = getattr(params_cls(), f.name)
        if isinstance(default, float) and isinstance(v, int) and not isinstance(v, bool):
            setattr(obj, f.name, float(v))
        elif default is not None and v is not None and (
                not isinstance(v, type(default)) or (isinstance(v, bool) and not isinstance(default, bool))) and not (
                isinstance(default, float) and isinstance(v, (int, float)) and not isinstance(v, bool)):
            raise UserError(f"setting {f.name}={v!r} should be a {type(default).__name__} (like the default "
                            f"{f.name}={default!r})")
    return obj


# method settings checked by name (every method's Params shares these names); each entry: (test, what it must be)
_POSITIVE = (lambda v: v > 0, "a finite number > 0")
_METHOD_RULES = {
    "batch_real": (lambda v: v >= 1, "an integer >= 1"),
    "batch_train": (lambda v: v >= 1, "an integer >= 1"),
    "batch_syn": (lambda v: v >= 0, "an integer >= 0 (0: the whole set)"),
    "outer_loop": (lambda v: v >= 0, "an integer >= 0 (0: the reference schedule for the IPC)"),
    "inner_loop": (lambda v: v >= 0, "an integer >= 0 (0: the reference schedule for the IPC)"),
    "outer_warmup": (lambda v: v >= 0, "an integer >= 0"),
    "inner_warmup": (lambda v: v >= 0, "an integer >= 0"),
    "dis_metric": (lambda v: v in ("ours", "mse", "cos"), "one of ours, mse, cos"),
    "syn_steps": (lambda v: v >= 1, "an integer >= 1"),
    "expert_epochs": (lambda v: v >= 1, "an integer >= 1"),
    "min_start_epoch": (lambda v: v >= 0, "an integer >= 0"),
    "max_start_epoch": (lambda v: v >= 1, "an integer >= 1"),
    "max_loss": _POSITIVE,
    "loss_threshold": (lambda v: v >= 0, "a finite number >= 0 (0: never skip)"),
    "momentum_y": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "ema_decay": (lambda v: 0 <= v <= 1, "a number in [0, 1]"),
}


def check_method_args(params) -> None:
    """The method settings that every method names alike: learning rates (lr_*) finite and > 0, batch sizes >= 1,
    loop counts >= 0, known distance and DSA strategy names, no NaN/inf anywhere. A Params class may add its own
    ``check()``."""
    import math
    for f in dataclasses.fields(params):
        k, v = f.name, getattr(params, f.name)
        if isinstance(v, float) and not math.isfinite(v):
            raise UserError(f"{k} must be a finite number (got {v!r})")
        rule = _POSITIVE if k.startswith("lr_") and isinstance(v, (int, float)) else _METHOD_RULES.get(k)
        if rule is not None and not isinstance(v, bool) and v is not None and not rule[0](v):
            raise UserError(f"{k} must be {rule[1]} (got {v!r})")
        if k == "dsa_strategy" and v:
            from .augment import DSA
            try:
                DSA(v)
            except ValueError as e:
                raise UserError(f"dsa_strategy={v!r}: {e} ('' takes the reference strategy for the dataset)") \
                    from None
    if callable(getattr(params, "check", None)):
        params.check()


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# run settings by kind: (fields, test, what the value must be)
_RUN_RULES = [
    (("seed",), lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    (("checkpoint_every", "eval_every", "track_every"), lambda v: _is_int(v) and v >= 0, "an integer >= 0 (0: off)"),
    (("val_epochs", "val_num_models", "panel_models"), lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    (("panel_epochs",), lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    (("eval_epochs",), lambda v: v is None or (_is_int(v) and v >= 1),
     "an integer >= 1 (or null: 1000 with eval_aug dsa or dc, 300 otherwise)"),
    (("eval_num_models",), lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    (("val_size",), lambda v: v is None or (_is_int(v) and v >= 0) or (
        isinstance(v, float) and 0 < v < 1), "a number of images >= 0 or a fraction in (0, 1) (or null)"),
    (("dataset", "method", "model", "device", "out_dir"), lambda v: isinstance(v, str) and v.strip() != "",
     "a non-empty string"),
    (("data_root",), lambda v: v is None or (isinstance(v, str) and v.strip() != ""), "a path (or null)"),
    (("note",), lambda v: isinstance(v, str), "a string"),
    (("zca",), lambda v: isinstance(v, bool), "true or false"),
    (("lambda_sdc", "sdc_ratio"), lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
     "a finite number >= 0"),
    (("method_args",), lambda v: isinstance(v, dict), "a mapping of method settings"),
]


def _check_name(name) -> None:
    """A run name is a directory under out_dir: relative, without '..', never out_dir itself."""
    from pathlib import PurePath
    if name is None:
        return
    if not isinstance(name, str) or not name.strip():
        raise UserError(f"name must be a non-empty string (got {name!r}); leave it out for the default run name")
    p = PurePath(name)
    if p.is_absolute() or ".." in p.parts or not p.parts or name.strip() in (".", "./") or "\x00" in name:
        raise UserError(f"name={name!r} would write outside out_dir: give a plain run name such as "
                        "'my-run' (and out_dir=DIR or --out DIR for where it goes)")


def _check_run_types(cfg: RunConfig) -> None:
    import os
    for k in ("dataset", "data_root", "out_dir", "name"):  # a pathlib.Path is as good as its string
        if isinstance(getattr(cfg, k), os.PathLike):
            setattr(cfg, k, os.fspath(getattr(cfg, k)))
    for keys, test, what in _RUN_RULES:
        for k in keys:
            v = getattr(cfg, k)
            if not test(v):
                raise UserError(f"{k} must be {what} (got {v!r})")
    _check_name(cfg.name)


def validate(cfg: RunConfig) -> None:
    def need(cond, msg):
        if not cond:
            raise UserError(msg)
    _check_run_types(cfg)
    need(_is_int(cfg.ipc) and cfg.ipc >= 1, f"ipc must be a positive integer (got {cfg.ipc!r})")
    need(_is_int(cfg.iterations) and cfg.iterations >= 0,
         f"iterations must be a non-negative integer (got {cfg.iterations!r})")
    need(cfg.init in ("real", "noise"), f"init must be 'real' or 'noise' (got {cfg.init!r})")
    from .evaluate import EVAL_AUGS
    need(cfg.eval_aug in EVAL_AUGS, f"eval_aug must be one of {', '.join(EVAL_AUGS)} (got {cfg.eval_aug!r})")
    need(cfg.precision in ("fp32", "bf16"), f"precision must be fp32 or bf16 (got {cfg.precision!r})")
    need(isinstance(cfg.compile, bool), f"compile must be true or false (got {cfg.compile!r})")
    need(cfg.eval_precision in ("fp32", "bf16"), f"eval_precision must be fp32 or bf16 (got {cfg.eval_precision!r})")
    need(isinstance(cfg.eval_compile, bool), f"eval_compile must be true or false (got {cfg.eval_compile!r})")
    need(cfg.sdc_mode in ("batch", "sample"), f"sdc_mode must be 'batch' or 'sample' (got {cfg.sdc_mode!r})")
    from .sdc import check_settings
    check_settings(cfg)
    from .tblog import LOGGERS, check_available
    need(cfg.logger in LOGGERS, f"logger must be one of {', '.join(LOGGERS)} (got {cfg.logger!r})")
    need(_is_int(cfg.log_images_every) and cfg.log_images_every >= 0,
         f"log_images_every must be an integer >= 0 (got {cfg.log_images_every!r})")
    check_available(cfg.logger)
    need(isinstance(cfg.eval_models, list) and cfg.eval_models and all(
        isinstance(m, str) and m for m in cfg.eval_models),
        f"eval_models must be a non-empty list of model names, e.g. [ConvNet] (got {cfg.eval_models!r})")
    cfg.lambda_sdc, cfg.sdc_ratio = float(cfg.lambda_sdc), float(cfg.sdc_ratio)
