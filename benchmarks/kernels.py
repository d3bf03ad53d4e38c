"""Each block's kernel against its NumPy twin at the reference workload's shapes (float32).

    python -m benchmarks.kernels [--batch 128] [--reps 200]

Prints median microseconds per call of every block under the "numba" backend (its kernel)
and the "numpy" backend (its twin), and their ratio. A kernel earns its place by this
ratio; the twin stays as the specification either way.
"""
from __future__ import annotations

import argparse
import os
import sys

if __name__ == "__main__":
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ.setdefault(var, "2")

import time  # noqa: E402

import numpy as np  # noqa: E402

D, H, M = 784, 400, 20


def _median_us(fn, reps):
    times = []
    for _ in range(reps + 5):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e6 * float(np.median(times[5:]))


def cases(B, seed=0):
    """(name, function of no arguments) per block; each call works on fresh copies."""
    from npvae import latent, layers, likelihoods, optim, tcvae
    from npvae.params import Workspace

    rng = np.random.default_rng(seed)
    f32 = np.float32
    x = (rng.random((B, D)) < 0.3).astype(f32)
    a = rng.standard_normal((B, H), dtype=f32)
    b = rng.standard_normal(H, dtype=f32)
    logits = 3 * rng.standard_normal((B, D), dtype=f32)
    h = rng.standard_normal((B, 2 * M), dtype=f32)
    eps = rng.standard_normal((1, B, M), dtype=f32)
    block = latent.GaussianLatent(M)
    block.forward(h, eps)
    dz = rng.standard_normal((B, M), dtype=f32)
    w, kl_w = np.full(B, 1.0 / B), np.full(M, 1.0 / B)
    n = D * H + H + H * 2 * M + 2 * M + M * H + H + H * D + D
    p, g = rng.standard_normal(n, dtype=f32), rng.standard_normal(n, dtype=f32)
    adam = optim.Adam(lr=1e-3)
    db = np.empty(H, f32)
    tc_log_w, ws = tcvae.stratified_log_weights(B, 8000), Workspace()  # MNIST's 8,000 rows
    tc_dz, tc_dh = np.empty((B, M), f32), np.empty((B, 2 * M), f32)
    out = [("bias + relu forward", lambda: layers.bias_act_forward(a.copy(), b, "relu")),
           ("bias + relu backward", lambda: layers.bias_act_backward(a.copy(), np.abs(a), "relu", db)),
           ("scale rows", lambda: layers.scale_rows(logits.copy(), w))]
    for name in ("bernoulli", "gaussian", "gaussian-learned", "continuous-bernoulli"):
        lik = likelihoods.make_likelihood(name)
        o = np.tile(logits, (1, lik.n_outputs(D) // D))
        out.append((f"{name} log p + gradient", lambda lik=lik, o=o: lik.log_prob_and_grad_rows(x, o.copy())))
    out += [("latent forward", lambda: block.forward(h, eps)),
            ("latent KL per dimension", block.kl_per_dim),
            ("latent backward", lambda: block.backward(dz, w, kl_w)),
            ("tcvae minibatch terms + gradient", lambda: tcvae.minibatch_terms(
                block, tc_log_w, 1.0, 6.0, 1.0, tc_dz, tc_dh, ws)),
            (f"Adam over {n:,} parameters", lambda: adam.step(p, g))]
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description="kernels against their NumPy twins")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--reps", type=int, default=200)
    args = parser.parse_args(argv)
    import npvae

    results = {}
    for backend in ("numba", "numpy"):
        npvae.set_backend(backend)
        for name, fn in cases(args.batch):
            fn()  # compile or load the kernel
            results.setdefault(name, {})[backend] = _median_us(fn, args.reps)
    print(f"batch {args.batch}, float32, median microseconds per call (copies of the inputs included)")
    print(f"{'block':<36} {'kernel':>9} {'twin':>9} {'twin/kernel':>12}")
    for name, r in results.items():
        print(f"{name:<36} {r['numba']:9.1f} {r['numpy']:9.1f} {r['numpy'] / r['numba']:12.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
