"""Fuzzing every file the project reads and the config parser: random bytes, truncations, bit flips and overwritten
spans of valid files never raise anything but the project's own UserError (whose message names the fix)."""
import atexit
import gzip
import os
import pickle
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from easydd.errors import UserError

# 50 examples per test in the suite (fixed seed: the same inputs every run); EASYDD_FUZZ_EXAMPLES=5000 for a search
_N = int(os.environ.get("EASYDD_FUZZ_EXAMPLES", "50"))
FUZZ = settings(max_examples=_N, deadline=None, derandomize=_N <= 50, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def damaged(blob: bytes):
    """Random bytes, a truncation, bit flips, or an overwritten span of ``blob``."""
    n = len(blob)

    def flip(flips):
        b = bytearray(blob)
        for i, bit in flips:
            b[i] ^= 1 << bit
        return bytes(b)

    def overwrite(args):
        i, junk = args
        return blob[:i] + junk + blob[i + len(junk):]
    return st.one_of(
        st.binary(max_size=min(2 * n, 4096)),
        st.integers(0, n - 1).map(lambda k: blob[:k]),
        st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, 7)), min_size=1, max_size=8).map(flip),
        st.tuples(st.integers(0, n - 1), st.binary(min_size=1, max_size=16)).map(overwrite),
        st.tuples(st.integers(0, min(n - 1, 200)), st.binary(min_size=1, max_size=8)).map(overwrite),  # headers
    )


def only_user_errors(fn, *args):
    try:
        fn(*args)
    except UserError as e:
        assert str(e).strip(), "a UserError must say what is wrong"


def as_file(data: bytes, suffix: str) -> Path:
    fd, name = tempfile.mkstemp(suffix=suffix, dir=_DIR)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return Path(name)


_DIR = tempfile.mkdtemp(prefix="easydd-fuzz-")
atexit.register(shutil.rmtree, _DIR, ignore_errors=True)


def _valid_set() -> bytes:
    from easydd.distilled import Distilled
    p = Path(_DIR) / "valid.safetensors"
    Distilled(torch.randn(4, 1, 4, 4), torch.arange(4), 0.01, {"dataset": "digits", "ipc": 1}).save(p)
    return p.read_bytes()


def _valid_checkpoint() -> bytes:
    p = Path(_DIR) / "valid.pt"
    torch.save({"iteration": 3, "method": {"images": torch.randn(4, 1, 4, 4), "labels": torch.arange(4),
                                           "optimizers": {}},
                "rows": [{"iteration": 1, "loss": 0.5}], "best": {"val_acc": -1.0, "iteration": None},
                "config_json": '{"ipc": 1, "method": "dm"}'}, p)
    return p.read_bytes()


def _valid_npz() -> bytes:
    p = Path(_DIR) / "valid.npz"
    rng = np.random.default_rng(0)
    y = np.arange(6) % 2
    np.savez(p, x_train=rng.integers(0, 255, (6, 4, 4), dtype=np.uint8), y_train=y,
             x_test=rng.integers(0, 255, (6, 4, 4), dtype=np.uint8), y_test=y)
    return p.read_bytes()


def _idx(arr: np.ndarray) -> bytes:
    code = {np.dtype("u1"): 0x08}[arr.dtype]
    return bytes([0, 0, code, arr.ndim]) + np.array(arr.shape, dtype=">u4").tobytes() + arr.tobytes()


def _valid_cifar() -> bytes:
    rng = np.random.default_rng(0)
    return pickle.dumps({b"data": rng.integers(0, 255, (3, 3072), dtype=np.uint8), b"labels": [0, 1, 2]})


def _valid_mat() -> bytes:
    import scipy.io
    p = Path(_DIR) / "valid.mat"
    rng = np.random.default_rng(0)
    scipy.io.savemat(p, {"X": rng.integers(0, 255, (32, 32, 3, 2), dtype=np.uint8),
                         "y": np.array([[10], [3]], dtype=np.uint8)})
    return p.read_bytes()


SET, CKPT, NPZ, CIFAR = _valid_set(), _valid_checkpoint(), _valid_npz(), _valid_cifar()
IDX_IMAGES = _idx(np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3))
IDX_LABELS = _idx(np.array([0, 1], dtype=np.uint8))


def test_the_valid_files_load():
    """The seeds of the fuzzing are valid, so a mutation is what breaks them."""
    from easydd.data.custom import load_custom
    from easydd.data.formats import idx_images, parse_cifar_batch, parse_idx
    from easydd.distill import load_checkpoint
    from easydd.distilled import Distilled
    assert len(Distilled.load(as_file(SET, ".safetensors"))) == 4
    assert load_checkpoint(as_file(CKPT, ".pt"))[2] == 3
    assert load_custom(as_file(NPZ, ".npz")).x_train.shape == (6, 1, 4, 4)
    assert idx_images(parse_idx(IDX_IMAGES), "x").shape == (2, 1, 3, 3)
    assert parse_cifar_batch(CIFAR)[0].shape == (3, 3, 32, 32)


@FUZZ
@given(damaged(SET))
def test_fuzzed_distilled_set(data):
    from easydd.distilled import Distilled
    only_user_errors(Distilled.load, as_file(data, ".safetensors"))


@FUZZ
@given(damaged(CKPT))
def test_fuzzed_checkpoint(data):
    from easydd.distill import load_checkpoint
    only_user_errors(load_checkpoint, as_file(data, ".pt"))


@FUZZ
@given(damaged(NPZ))
def test_fuzzed_npz(data):
    from easydd.data.custom import load_custom
    only_user_errors(load_custom, as_file(data, ".npz"))


@FUZZ
@given(st.sampled_from(["images", "labels"]).flatmap(
    lambda k: damaged(IDX_IMAGES if k == "images" else IDX_LABELS).map(lambda d: (k, d))), st.booleans())
def test_fuzzed_idx(kd, gzipped):
    from easydd.data.formats import idx_images, idx_labels, load_idx
    kind, data = kd
    path = as_file(gzip.compress(data) if gzipped else data, ".gz" if gzipped else "")
    only_user_errors(lambda: (idx_images if kind == "images" else idx_labels)(load_idx(path), "x"))


@FUZZ
@given(damaged(CIFAR))
def test_fuzzed_cifar_batch(data):
    from easydd.data.formats import parse_cifar_batch
    only_user_errors(parse_cifar_batch, data)


@pytest.fixture(scope="module")
def mat():
    pytest.importorskip("scipy")
    return _valid_mat()


@FUZZ
@given(data=st.data())
def test_fuzzed_svhn_mat_is_refused_before_it_is_parsed(mat, data):
    """scipy.io.loadmat crashed this process (SIGSEGV) on a bit-flipped .mat while this test was written: the loader
    checks the md5 of an SVHN file before scipy reads it, which is what is fuzzed here."""
    from easydd.data.formats import load_svhn_mat, md5_bytes
    blob = data.draw(damaged(mat))
    path = as_file(blob, ".mat")
    if blob == mat:
        assert load_svhn_mat(path, md5_bytes(mat))[0].shape == (2, 3, 32, 32)
        return
    with pytest.raises(UserError, match="checksum mismatch"):
        load_svhn_mat(path, md5_bytes(mat))


@FUZZ
@given(damaged(b'{"dataset": "mnist", "ipc": 1, "method": "dsa", "accs": [0.5, 0.6], "seed": 0}\n'
               b'{"dataset": "mnist", "ipc": 1, "method": "dsa", "lambda_sdc": 0.1, "test_mean": 0.7}\n'))
def test_fuzzed_report_records(data):
    from easydd.io import read_jsonl
    from easydd.paper.records import load_records
    path = as_file(data, ".jsonl")
    only_user_errors(load_records, [path])
    only_user_errors(read_jsonl, path)


_KEYS = ["ipc", "seed", "iterations", "lambda_sdc", "sdc_ratio", "val_size", "eval_epochs", "eval_models", "name",
         "zca", "method", "lr_img", "batch_real", "outer_loop", "dis_metric", "dsa_strategy", "method_args",
         "method_args.lr_img", "checkpoint_every", "out_dir", "model", "init", "lr_lr", "syn_steps"]
_VALUES = st.one_of(st.text(max_size=12), st.sampled_from(
    ["1", "-1", "0", "1.5", "1e-3", ".nan", ".inf", "-.inf", "true", "null", "[1", "[ConvNet, 3]", "{a: 1}", "~",
     "'x'", "!!python/object:os.system", "&a [*a]", "dsa", "mtt", "../..", "/abs", "1e999", "0x10", "\x00"]))


@FUZZ
@given(st.lists(st.tuples(st.one_of(st.sampled_from(_KEYS), st.text(max_size=8)), _VALUES), max_size=4),
       st.sampled_from([None, "dsa-mnist-ipc1-cpu", "dm-mnist-ipc10-cpu"]))
def test_fuzzed_config_overrides(pairs, preset):
    from easydd.config import build_config, parse_overrides
    from easydd.methods import method_params

    def parse_and_build():
        build_config(preset, parse_overrides([f"{k}={v}" for k, v in pairs]), method_params)
    only_user_errors(parse_and_build)
