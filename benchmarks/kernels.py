"""Each kernel against its NumPy twin at the reference workload's shapes (float32).

    python -m benchmarks.kernels [--batch 128] [--reps 200]

Prints median microseconds per call. This is how the splits in npvae.fast.kernels were chosen:
for the Bernoulli likelihood, one numba loop (scalar exp / log1p) against NumPy's SIMD exp /
log1p into preallocated buffers with numba fusing the rest; for Adam, serial against prange.
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


def _median_us(fn, setup, reps):
    times = []
    for _ in range(reps + 5):
        args = setup()
        t0 = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - t0)
    return float(np.median(times[5:]) * 1e6)


def run(batch=128, reps=200):
    from npvae.fast import kernels as K

    f = np.float32
    rng = np.random.default_rng(0)
    B, D, H, M, N = batch, 784, 400, 20, 652_824
    x = (rng.random((B, D)) < 0.3).astype(f)
    a_out = (3 * rng.standard_normal((B, D))).astype(f)
    a_hid = rng.standard_normal((B, H)).astype(f)
    b_out, b_hid = rng.standard_normal(D).astype(f), rng.standard_normal(H).astype(f)
    y_hid = np.maximum(a_hid, 0)
    e, s, col = np.empty_like(a_out), np.empty_like(a_out), np.empty(D)
    db_out, db_hid = np.empty(D, f), np.empty(H, f)
    h = rng.standard_normal((B, 2 * M)).astype(f)
    b_head = (0.1 * rng.standard_normal(2 * M)).astype(f)
    eps = rng.standard_normal((1, B, M)).astype(f)
    z, std = np.empty((B, M), f), np.empty((B, M), f)
    dh, dbh = np.empty((B, 2 * M), f), np.empty(2 * M, f)
    p, g, m, v = (rng.random(N).astype(f) for _ in range(4))
    adam_args = (f(0.9), f(0.999), f(1e-5), f(0.5), f(1e-8), f(1.0), np.finfo(f).tiny)
    scale = f(1.0 / B)
    act = (K.ACT_CODES["relu"], f(0))

    cases = [
        ("bias+relu forward (B,400)",
         lambda: (a_hid.copy(), b_hid, *act), K.bias_act_forward, K.bias_act_forward_np),
        ("relu backward + db (B,400)",
         lambda: (a_hid.copy(), y_hid, *act, db_hid), K.bias_act_backward, K.bias_act_backward_np),
        ("bernoulli log p + grad, split (B,784)",
         lambda: (x, a_out.copy(), b_out, scale, db_out, col, e, s),
         K.bernoulli_loss_grad, K.bernoulli_loss_grad_np),
        ("bernoulli log p + grad, one loop",
         lambda: (x, a_out.copy(), b_out, scale, db_out, col),
         K.bernoulli_loss_grad_fused, None),
        ("gaussian log p + grad (B,784)",
         lambda: (x, a_out.copy(), b_out, f(1), -720.4, scale, db_out, col),
         K.gaussian_loss_grad, K.gaussian_loss_grad_np),
        ("gaussian-learned log p + grad, split (B,2x392)",
         lambda: (x[:, :392], a_out.copy(), b_out, f(-9), f(9), scale, db_out, col, e, s),
         K.gaussian_learned_loss_grad, K.gaussian_learned_loss_grad_np),
        ("gaussian-learned log p + grad, one loop",
         lambda: (x[:, :392], a_out.copy(), b_out, f(-9), f(9), scale, db_out, col),
         K.gaussian_learned_loss_grad_fused, None),
        ("reparam + KL forward (B,20)",
         lambda: (h.copy(), b_head, eps, z, std), K.reparam_kl_forward, K.reparam_kl_forward_np),
        ("reparam + KL backward (B,20)",
         lambda: (z, eps, h, std, scale, dh, dbh), K.reparam_kl_backward, K.reparam_kl_backward_np),
        ("adam, prange (652,824)", lambda: (p, g, m, v, *adam_args),
         K.adam_update, K.adam_update_np),
        ("adam, serial loop", lambda: (p, g, m, v, *adam_args), K.adam_update_serial, None),
        ("sgd momentum, prange", lambda: (p, g, v, f(1e-3), f(0.9), False, np.finfo(f).tiny),
         K.sgd_update, K.sgd_update_np),
    ]
    rows = []
    for name, setup, kernel, twin in cases:
        kernel(*setup())  # compile or load from cache
        t_k = _median_us(kernel, setup, reps)
        t_t = _median_us(twin, setup, reps) if twin is not None else float("nan")
        rows.append((name, t_k, t_t))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--reps", type=int, default=200)
    args = parser.parse_args(argv)
    print(f"{'kernel (batch ' + str(args.batch) + ')':<48} {'numba us':>9} {'numpy twin us':>14}")
    for name, t_k, t_t in run(args.batch, args.reps):
        print(f"{name:<48} {t_k:9.1f} {t_t:14.1f}")
    print(f"load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    sys.exit(main())
