"""Hypothesis profiles and the helpers shared by the test modules.

The default profile, ``ci``, is derandomized: ``pytest`` runs the same examples on every machine,
those CI runs. ``HYPOTHESIS_PROFILE=dev`` draws 25 fresh random examples per test instead, to
explore. Seeds come from strategies (``seeds``) and become generators with ``rng_from``, never
the global RNG.
"""
import gzip
import os
import struct

import numpy as np
from hypothesis import settings, strategies as st

from lto_ref import data, policy
from lto_ref.gps import cost, dynamics, lingauss

settings.register_profile("dev", max_examples=25, deadline=None)
settings.register_profile("ci", max_examples=200, derandomize=True, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

seeds = st.integers(0, 2**32 - 1)


def rng_from(seed):
    """A fresh generator for a hypothesis-drawn seed (never the global RNG)."""
    return np.random.default_rng(seed)


def random_spd(rng, *shape, scale=1.0):
    """SPD matrices (…, k, k) with eigenvalues ≥ 0.1·scale."""
    k = shape[-1]
    A = rng.standard_normal(shape[:-1] + (k, k))
    return scale * (A @ np.swapaxes(A, -1, -2) / k + 0.1 * np.eye(k))


def random_controller(rng, M, T, dX, dU):
    """Linear-Gaussian controllers with standard-normal gains and offsets, SPD covariances."""
    return lingauss.make(rng.standard_normal((M, T, dU, dX)), rng.standard_normal((M, T, dU)),
                         random_spd(rng, M, T, dU))


def random_dynamics(rng, M, T, dX, dU, noise=0.1, x0_var=0.1):
    """Contractive linear dynamics (spectral norm of F ≤ 0.9) with PSD noise."""
    F = rng.standard_normal((M, T - 1, dX, dX + dU))
    F = 0.9 * F / np.linalg.norm(F, ord=2, axis=(-2, -1))[..., None, None]
    return dynamics.Dynamics(Fm=F, fv=rng.standard_normal((M, T - 1, dX)),
                             dyn_covar=noise * random_spd(rng, M, T - 1, dX),
                             x0mu=rng.standard_normal((M, dX)),
                             x0sigma=x0_var * random_spd(rng, M, dX))


def random_cost(rng, M, T, dX, dU):
    """Convex quadratic costs in z = [x; u] (SPD Cm, zero constants)."""
    return cost.QuadCost(Cm=random_spd(rng, M, T, dX + dU), cv=rng.standard_normal((M, T, dX + dU)),
                         cc=np.zeros((M, T)))


def random_policy(rng, dO, dU, *, hidden=7, activation="softplus", weight_scale=0.5,
                  reflect=None, whitening=True):
    """A policy with random weights, standard-normal biases and (optionally) a random whitening."""
    pol = policy.init(rng, dO, dU, hidden=hidden, activation=activation,
                      weight_scale=weight_scale, reflect=reflect)
    pol = pol._replace(net=[(W, rng.standard_normal(b.shape)) for W, b in pol.net])
    if whitening:
        pol = pol._replace(shift=rng.standard_normal(dO), scale=rng.uniform(0.5, 2, dO))
    return pol


# data files written from the published format descriptions, independent of the readers

def idx_bytes(array, magic):
    """IDX: big-endian uint32 magic, one big-endian uint32 per dimension, then the uint8 data."""
    array = np.asarray(array, dtype=np.uint8)
    return struct.pack(f">{1 + array.ndim}I", magic, *array.shape) + array.tobytes()


def write(path, raw, gz=False):
    with open(path, "wb") as fh:
        fh.write(gzip.compress(raw) if gz else raw)
    return str(path)


def write_idx_pair(folder, images, labels, prefix="train", gz=True, sep="-"):
    """images (N, rows, cols), labels (N,) as {prefix}-images-idx3-ubyte[.gz] and labels."""
    os.makedirs(folder, exist_ok=True)
    suffix = ".gz" if gz else ""
    return (write(os.path.join(folder, f"{prefix}-images{sep}idx3-ubyte{suffix}"),
                  idx_bytes(images, 2051), gz),
            write(os.path.join(folder, f"{prefix}-labels{sep}idx1-ubyte{suffix}"),
                  idx_bytes(labels, 2049), gz))


def cifar_bytes(labels, pixels):
    """CIFAR binary: per record the label byte(s), then 3,072 pixel bytes. labels (N, k)."""
    return b"".join(bytes(int(v) for v in lab) + pix.astype(np.uint8).tobytes()
                    for lab, pix in zip(labels, pixels))


def csv_text(pixels, labels):
    return "".join(",".join(str(int(v)) for v in row) + f",{int(y)}\n"
                   for row, y in zip(pixels, labels))


def fake_fashion(rng, per_class, D=784, part=0):
    """10 classes × per_class distinct images, shuffled; bytes 0-2 encode (part, index)."""
    n = 10 * per_class
    labels = rng.permutation(np.repeat(np.arange(10), per_class))
    pixels = rng.integers(0, 256, (n, D), dtype=np.uint8)
    pixels[:, 0], pixels[:, 1], pixels[:, 2] = part, np.arange(n) // 256, np.arange(n) % 256
    return data.Images(pixels, labels.astype(np.int64), 10, "fashion_mnist", f"fake{part}", False)
