"""Where one training step spends its time, block by block.

Replays the VAE's training step (the same block calls as `VAE._loss_and_grads`, then Adam)
with a clock read around each block, repeats it, and prints the median of each. The matrix
products are inside the Dense blocks' forward and backward; the products alone are the GEMM
floor of benchmarks/run.py. Run:

    python -m benchmarks.profile_step [--batch 128] [--steps 300] [--backend numba]
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


def profile(batch=128, steps=300, seed=0, backend="numba"):
    """(list of (block, median ms), median ms of the whole step timed as one call)."""
    import npvae
    from npvae.layers import scale_rows
    from npvae.objectives import gaussian_latent_step

    npvae.set_backend(backend)
    model = npvae.VAE(784, 20, hidden=(400,), likelihood="bernoulli", dtype=np.float32, seed=seed)
    opt = npvae.Adam(lr=1e-3)
    rng = np.random.default_rng(seed)
    x = (rng.random((batch, 784)) < 0.3).astype(np.float32)
    eps = rng.standard_normal((1, batch, 20), dtype=np.float32)
    m, times = model.latent_dim, {}

    def timed(name, fn):
        t0 = time.perf_counter()
        result = fn()
        times.setdefault(name, []).append(time.perf_counter() - t0)
        return result

    for _ in range(steps + 20):  # the first 20 load the kernels and fill the buffers
        h = timed("encoder forward (2 GEMMs)", lambda: model.encoder.forward(x))
        z = timed("latent forward", lambda: model.latent.forward(h, eps))
        out = timed("decoder forward (2 GEMMs)", lambda: model.decoder.forward(z))
        log_px, dout = timed("likelihood + gradient", lambda: model.likelihood.log_prob_and_grad_rows(x, out))
        step = timed("objective weights", lambda: gaussian_latent_step(log_px, model.latent, 1.0, "elbo",
                                                                     0.0, model._ws))
        timed("scale rows", lambda: scale_rows(dout, step.w_rec))
        dz = timed("decoder backward (4 GEMMs)", lambda: model.decoder.backward(dout)[:, :m])
        dh = timed("latent backward", lambda: model.latent.backward(dz, step.w_latent, step.kl_w))
        timed("encoder backward (3 GEMMs)", lambda: model.encoder.backward(dh, need_dx=False))
        timed("Adam", lambda: opt.step(model.flat_params, model.flat_grads))
    rows = [(name, 1e3 * float(np.median(t[20:]))) for name, t in times.items()]
    whole = []
    for _ in range(steps):
        t0 = time.perf_counter()
        model._loss_and_grads(x, eps, 1.0)
        opt.step(model.flat_params, model.flat_grads)
        whole.append(time.perf_counter() - t0)
    return rows, 1e3 * float(np.median(whole))


def format_profile(rows, whole_ms, batch):
    lines = [f"one training step, batch {batch} (median ms over repeated steps)",
             f"{'block':<36} {'ms':>7}", "-" * 44]
    lines += [f"{name:<36} {t:7.3f}" for name, t in rows]
    lines += ["-" * 44, f"{'sum of the blocks':<36} {sum(t for _, t in rows):7.3f}",
              f"{'whole step, timed as one call':<36} {whole_ms:7.3f}"]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--backend", default="numba", choices=["numba", "numpy"])
    args = parser.parse_args(argv)
    rows, whole = profile(args.batch, args.steps, backend=args.backend)
    print(format_profile(rows, whole, args.batch))
    return 0


if __name__ == "__main__":
    sys.exit(main())
