"""Where one fused training step spends its time, phase by phase.

Replays the numba backend's step (model._loss_and_grads_fused, then Adam) on the model's
own workspace and kernels with a clock read between phases, repeats it, and prints the
median of each phase beside the GEMM floor of the same step. Run:

    python -m benchmarks.profile_step [--batch 128] [--steps 300]
"""
from __future__ import annotations

import argparse
import os
import sys

if __name__ == "__main__":  # threads must be fixed before numpy / numba load
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ.setdefault(var, "2")

import time  # noqa: E402

import numpy as np  # noqa: E402


def profile(batch=128, steps=300, seed=0):
    """Median milliseconds of each phase of one step: a list of (phase, ms)."""
    import npvae
    from npvae.fast import kernels as K

    npvae.set_backend("numba")
    model = npvae.VAE(784, 20, hidden=(400,), likelihood="bernoulli", dtype=np.float32, seed=seed)
    opt = npvae.Adam(lr=1e-3)
    rng = np.random.default_rng(seed)
    x = (rng.random((batch, 784)) < 0.3).astype(np.float32)
    eps = rng.standard_normal((1, batch, 20), dtype=np.float32)
    model._loss_and_grads(x, eps, 1.0)  # compile / load kernels, build the workspace
    opt.step(model.flat_params, model.flat_grads)
    ws = model._workspace(1, batch)
    enc, dec = model._dense_layers()
    code, param = ws.act_code, ws.act_param
    (W1, W2), (W3, W4) = enc, dec
    y1, h = ws.enc_y
    y3, out = ws.dec_y
    scale = np.float32(1.0 / batch)

    phases = [
        ("gemm  x @ W1 (B,784)x(784,400)", lambda: np.matmul(x, W1.W, out=y1)),
        ("kern  bias+relu enc", lambda: K.bias_act_forward(y1, W1.b, code, param)),
        ("gemm  h @ W2 (400x40)", lambda: np.matmul(y1, W2.W, out=h)),
        ("kern  reparam+KL fwd", lambda: K.reparam_kl_forward(h, W2.b, eps, ws.z, ws.std)),
        ("gemm  z @ W3 (20x400)", lambda: np.matmul(ws.z, W3.W, out=y3)),
        ("kern  bias+relu dec", lambda: K.bias_act_forward(y3, W3.b, code, param)),
        ("gemm  h @ W4 (400x784)", lambda: np.matmul(y3, W4.W, out=out)),
        ("kern  bernoulli prep", lambda: K._bernoulli_prep(out, W4.b, ws.e)),
        ("ufunc exp", lambda: np.exp(ws.e, out=ws.e)),
        ("ufunc log1p", lambda: np.log1p(ws.e, out=ws.s)),
        ("kern  bernoulli finish", lambda: K._bernoulli_finish(x, out, ws.e, ws.s, scale,
                                                               W4.db, ws.colacc)),
        ("gemm  dW4 = h^T d (400x784)", lambda: np.matmul(y3.T, out, out=W4.dW)),
        ("gemm  dh = d W4^T", lambda: np.matmul(out, W4.W.T, out=ws.dec_dx[1])),
        ("kern  relu bwd + db dec", lambda: K.bias_act_backward(ws.dec_dx[1], y3, code, param,
                                                                W3.db)),
        ("gemm  dW3 = z^T d (20x400)", lambda: np.matmul(ws.z.T, ws.dec_dx[1], out=W3.dW)),
        ("gemm  dz = d W3^T", lambda: np.matmul(ws.dec_dx[1], W3.W.T, out=ws.dec_dx[0])),
        ("kern  reparam+KL bwd", lambda: K.reparam_kl_backward(ws.dec_dx[0], eps, h, ws.std,
                                                               np.float32(1.0 / batch), ws.dh,
                                                               W2.db)),
        ("gemm  dW2 = h^T dh (400x40)", lambda: np.matmul(y1.T, ws.dh, out=W2.dW)),
        ("gemm  dh1 = dh W2^T", lambda: np.matmul(ws.dh, W2.W.T, out=ws.enc_dx[1])),
        ("kern  relu bwd + db enc", lambda: K.bias_act_backward(ws.enc_dx[1], y1, code, param,
                                                                W1.db)),
        ("gemm  dW1 = x^T d (784x400)", lambda: np.matmul(x.T, ws.enc_dx[1], out=W1.dW)),
        ("kern  adam (652,824 params)", lambda: opt.step(model.flat_params, model.flat_grads)),
    ]
    times = np.zeros((steps, len(phases)))
    clock = time.perf_counter
    for s in range(steps):
        for i, (_, fn) in enumerate(phases):
            t0 = clock()
            fn()
            times[s, i] = clock() - t0
    whole = []
    for _ in range(steps):
        t0 = clock()
        model._loss_and_grads(x, eps, 1.0)
        opt.step(model.flat_params, model.flat_grads)
        whole.append(clock() - t0)
    med = np.median(times, axis=0) * 1e3
    return [(name, float(t)) for (name, _), t in zip(phases, med)], float(np.median(whole) * 1e3)


def format_profile(rows, whole_ms, batch):
    gemm = sum(t for name, t in rows if name.startswith("gemm"))
    lines = [f"one training step, batch {batch} (median ms over repeated steps)",
             f"{'phase':<36} {'ms':>7}", "-" * 44]
    lines += [f"{name:<36} {t:7.3f}" for name, t in rows]
    lines += ["-" * 44,
              f"{'sum of GEMMs (in-step floor)':<36} {gemm:7.3f}",
              f"{'sum of everything else':<36} {sum(t for _, t in rows) - gemm:7.3f}",
              f"{'whole step, timed as one call':<36} {whole_ms:7.3f}"]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args(argv)
    rows, whole = profile(args.batch, args.steps)
    print(format_profile(rows, whole, args.batch))


if __name__ == "__main__":
    sys.exit(main())
