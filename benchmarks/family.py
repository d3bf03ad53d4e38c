"""The VAE family against PyTorch CPU and each model's own GEMM floor, side by side in one run.

    python -m benchmarks.family                    # every row, 5 epochs each (1 warm-up)
    python -m benchmarks.family --rows vae,iwae5   # some rows
    python -m benchmarks.family --check            # the PyTorch losses equal npvae's (float64)

MNIST 8k / 2k split (the t10k files, found through $NPVAE_MNIST_DIR or the dataset lookup),
batch 128, float32, Adam lr 1e-3, 2 threads. For every row (a model and its objective) three
implementations run, each in its own process, and take turns epoch by epoch with the order
rotated every round, so load from other users falls on all alike:

* npvae under the "numba" backend: `npvae.fit`, one epoch per request, the time fit reports;
* PyTorch CPU on the same architecture, data, loss and optimizer (`--check` shows the losses
  agree to 1e-6 relative when the weights and the noise are the same);
* the model's GEMM floor: only the matrix products of its training step (every layer's
  forward x W, backward dW, and dx except at the model's input), float32 BLAS into
  preallocated outputs, for every step of an epoch. No implementation that uses BLAS for
  its products can beat it.

Columns: s/epoch (median of the epochs after the warm-up), best, x floor (s/epoch over the
floor's), torch/this (PyTorch's s/epoch over npvae's: above 1 = npvae faster), the held-out
negative ELBO after the same epochs (one posterior sample per image, nats).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time

THREADS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
if __name__ == "__main__":  # fix the thread counts before numpy, numba or torch load
    for _var in THREADS_ENV:
        os.environ[_var] = "2"

import numpy as np  # noqa: E402

D, H, M, C = 784, 400, 20, 10
TANH_NET = dict(latent_dims=(100, 50), hidden=((200, 200), (100, 100)))
ROWS = {  # key -> (label, model kind, model keywords, fit keywords)
    "vae": ("VAE, ELBO, Bernoulli", "vae", {}, {}),
    "iwae5": ("VAE, IWAE k = 5", "vae", {}, dict(objective="iwae", n_samples=5)),
    "iwae50": ("VAE, IWAE k = 50", "vae", {}, dict(objective="iwae", n_samples=50)),
    "freebits": ("VAE, free bits 0.5", "vae", {}, dict(free_bits=0.5)),
    "cvae": ("ConditionalVAE", "conditional", {}, {}),
    "hier-tanh": ("HierarchicalVAE, tanh", "hierarchical", dict(activation="tanh"), {}),
    "hier-relu": ("HierarchicalVAE, ReLU", "hierarchical", dict(activation="relu"), {}),
    "gauss": ("VAE, learned-variance Gaussian", "vae", dict(likelihood="gaussian-learned"), {}),
    "cb": ("VAE, continuous Bernoulli", "vae", dict(likelihood="continuous-bernoulli"), {}),
}
IMPLS = ("floor", "npvae", "torch")
BATCH = 128
LOG_2PI = math.log(2 * math.pi)
LO, HI = -9.0, 9.0  # the learned log-variance's soft-clamp bounds (npvae.likelihoods)


def load_data():
    """(x_train, x_test, y_train, y_test): MNIST t10k split 8,000 / 2,000."""
    from npvae import data

    return data.mnist_split(os.environ.get("NPVAE_MNIST_DIR"), download=False)


def npvae_model(kind, model_kw, dtype=np.float32, seed=0):
    import npvae

    if kind == "vae":
        return npvae.VAE(D, M, hidden=(H,), dtype=dtype, seed=seed, **model_kw)
    if kind == "conditional":
        return npvae.ConditionalVAE(D, C, latent_dim=M, hidden=(H,), dtype=dtype, seed=seed, **model_kw)
    return npvae.HierarchicalVAE(D, dtype=dtype, seed=seed, **TANH_NET, **model_kw)


# ===================================================== the GEMM floor


def mlps(kind, model_kw, L):
    """The model's MLPs as (sizes, rows, need_dx_at_input), in the order a step runs them."""
    P = 2 * D if model_kw.get("likelihood") == "gaussian-learned" else D
    if kind == "hierarchical":
        (m1, m2), (h1, h2) = TANH_NET["latent_dims"], TANH_NET["hidden"]
        R = L * BATCH
        return [([D, *h1, 2 * m1], BATCH, False), ([m1, *h2, 2 * m2], R, True),
                ([m2, *h2[::-1], 2 * m1], R, True), ([m1, *h1[::-1], P], R, True)]
    extra = C if kind == "conditional" else 0
    return [([D + extra, H, 2 * M], BATCH, False), ([M + extra, H, P], L * BATCH, True)]


def gemm_products(nets, seed=0):
    """Closures running each product of one step into preallocated float32 arrays."""
    rng = np.random.default_rng(seed)
    r = lambda *shape: rng.standard_normal(shape, dtype=np.float32)  # noqa: E731
    products = []
    for sizes, R, need_dx in nets:
        for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            x, W, y, dW, dx = r(R, n_in), r(n_in, n_out), r(R, n_out), r(n_in, n_out), r(R, n_in)
            products.append(lambda x=x, W=W, y=y: np.matmul(x, W, out=y))  # forward
            products.append(lambda x=x, y=y, dW=dW: np.matmul(x.T, y, out=dW))  # dW
            if k > 0 or need_dx:
                products.append(lambda y=y, W=W, dx=dx: np.matmul(y, W.T, out=dx))  # dx
    return products


class FloorRunner:
    def __init__(self, kind, model_kw, fit_kw, data, seed):
        L = fit_kw.get("n_samples", 1)
        n = data[0].shape[0]
        self.full, rest = divmod(n, BATCH)
        self.products = gemm_products(mlps(kind, model_kw, L))
        self.n_products = len(self.products)

    def epoch(self):
        t0 = time.perf_counter()
        for _ in range(self.full + 1):  # the smaller last batch is counted as a full one
            for product in self.products:
                product()
        return time.perf_counter() - t0

    def finish(self):
        return {"products": self.n_products}


# ===================================================== npvae


class NpvaeRunner:
    def __init__(self, kind, model_kw, fit_kw, data, seed):
        import npvae

        npvae.set_backend("numba")
        self.npvae, self.fit_kw, self.seed, self.epochs = npvae, fit_kw, seed, 0
        self.model = npvae_model(kind, model_kw, seed=seed)
        x_train, x_test, y_train, y_test = data
        if kind == "conditional":
            x_train, x_test = self.model.join(x_train, y_train), self.model.join(x_test, y_test)
        self.x_train, self.x_test = x_train, x_test
        self.opt = npvae.Adam(lr=1e-3)

    def epoch(self):
        self.epochs += 1
        history = self.npvae.fit(self.model, self.x_train, epochs=1, batch_size=BATCH,
                                 optimizer=self.opt, seed=1000 * self.seed + self.epochs, **self.fit_kw)
        return history.seconds[-1]

    def finish(self):
        return {"nelbo": self.npvae.negative_elbo(self.model, self.x_test, seed=0)[0]}


# ===================================================== PyTorch


def torch_family():
    """The PyTorch twins of the family's models and losses (imported lazily: torch is big)."""
    import torch
    import torch.nn.functional as F

    def mlp(sizes, act):
        layers = []
        for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(torch.nn.Linear(a, b))
            if k < len(sizes) - 2:
                layers.append(torch.nn.Tanh() if act == "tanh" else torch.nn.ReLU())
        return torch.nn.Sequential(*layers)

    def soft_clamp(r):
        return LO + F.softplus(r - LO) - F.softplus(r - HI)

    def log_lik(name, x, out):  # x: (B, D), out: (..., B, P) -> (..., B)
        if name == "bernoulli":
            return torch.sum(x * out - F.softplus(out), -1)
        if name == "continuous-bernoulli":
            a = out.abs()
            safe = torch.where(a < 1e-3, torch.ones_like(a), a)
            log_c = torch.where(a < 1e-3, math.log(2.0) + a * a / 12,  # log(l / tanh(l / 2))
                                torch.log(safe) + torch.log1p(torch.exp(-safe)) - torch.log(-torch.expm1(-safe)))
            return torch.sum(x * out - F.softplus(out) + log_c, -1)
        f, r = out.chunk(2, -1)  # gaussian-learned
        lv = soft_clamp(r)
        return -0.5 * torch.sum((x - f) ** 2 * torch.exp(-lv) + lv + LOG_2PI, -1)

    class Family(torch.nn.Module):
        def __init__(self, kind, model_kw):
            super().__init__()
            self.kind, self.lik = kind, model_kw.get("likelihood", "bernoulli")
            act = model_kw.get("activation", "relu" if kind != "hierarchical" else "tanh")
            self.nets = torch.nn.ModuleDict({name: mlp(sizes, act) for name, (sizes, _, _) in
                                             zip(self.names(), mlps(kind, model_kw, 1))})

        def names(self):
            if self.kind == "hierarchical":
                return ["encoder1", "encoder2", "decoder2", "decoder1"]
            return ["encoder", "decoder"]

        def log_w_parts(self, x, y, eps):
            """(log p(x|z): (L, B), the rest of log w, the analytic KL per dimension or None)."""
            if self.kind == "hierarchical":
                return self.hierarchical(x, eps)
            enc_in = x if y is None else torch.cat([x, y], -1)
            mu, lv = self.nets["encoder"](enc_in).chunk(2, -1)
            z = mu + torch.exp(0.5 * lv) * eps  # (L, B, m)
            dec_in = z if y is None else torch.cat([z, y.expand(eps.shape[0], *y.shape)], -1)
            log_px = log_lik(self.lik, x, self.nets["decoder"](dec_in))
            ratio = -0.5 * torch.sum(z * z - eps * eps, -1) + 0.5 * torch.sum(lv, -1)
            kl_terms = 0.5 * (mu * mu + torch.exp(lv) - 1 - lv)  # (B, m)
            return log_px, ratio, kl_terms

        def hierarchical(self, x, eps):
            m1 = TANH_NET["latent_dims"][0]
            e1, e2 = eps[..., :m1], eps[..., m1:]
            mu1, lv1 = self.nets["encoder1"](x).chunk(2, -1)
            z1 = mu1 + torch.exp(0.5 * lv1) * e1
            mu2, lv2 = self.nets["encoder2"](z1).chunk(2, -1)
            z2 = mu2 + torch.exp(0.5 * lv2) * e2
            mean1, r1 = self.nets["decoder2"](z2).chunk(2, -1)
            lvp = soft_clamp(r1)
            log_px = log_lik(self.lik, x, self.nets["decoder1"](z1))
            log_pz1 = -0.5 * torch.sum((z1 - mean1) ** 2 * torch.exp(-lvp) + lvp + LOG_2PI, -1)
            log_pz2 = -0.5 * torch.sum(z2 * z2 + LOG_2PI, -1)
            log_qz1 = -0.5 * torch.sum(e1 * e1 + lv1 + LOG_2PI, -1)
            log_qz2 = -0.5 * torch.sum(e2 * e2 + lv2 + LOG_2PI, -1)
            return log_px, log_pz1 + log_pz2 - log_qz1 - log_qz2, None

        def loss(self, x, y, eps, objective="elbo", free_bits=0.0):
            """The objective in nats per example, as npvae's `_loss` defines it."""
            log_px, rest, kl_terms = self.log_w_parts(x, y, eps)
            if objective == "iwae":
                log_w = log_px + rest
                return -torch.mean(torch.logsumexp(log_w, 0) - math.log(eps.shape[0]))
            if kl_terms is None:  # sampled KL terms (the two-layer model)
                return -torch.mean(log_px + rest)
            kl_dim = kl_terms.mean(0)
            kl = torch.sum(torch.clamp(kl_dim, min=free_bits)) if free_bits else kl_dim.sum()
            return -log_px.mean() + kl

    return torch, Family


class TorchRunner:
    def __init__(self, kind, model_kw, fit_kw, data, seed):
        torch, Family = torch_family()
        torch.set_num_threads(2)
        torch.manual_seed(seed)
        self.torch, self.kind, self.fit_kw = torch, kind, fit_kw
        self.model = Family(kind, model_kw)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        x_train, x_test, y_train, y_test = data
        onehot = lambda y: torch.nn.functional.one_hot(torch.from_numpy(y), C).float()  # noqa: E731
        self.X, self.Xt = torch.from_numpy(x_train), torch.from_numpy(x_test)
        self.Y = onehot(y_train) if kind == "conditional" else None
        self.Yt = onehot(y_test) if kind == "conditional" else None
        self.noise_dim = sum(TANH_NET["latent_dims"]) if kind == "hierarchical" else M

    def epoch(self):
        torch, L = self.torch, self.fit_kw.get("n_samples", 1)
        objective, free_bits = self.fit_kw.get("objective", "elbo"), self.fit_kw.get("free_bits", 0.0)
        t0 = time.perf_counter()
        perm = torch.randperm(self.X.shape[0])
        for start in range(0, self.X.shape[0], BATCH):
            idx = perm[start:start + BATCH]
            y = None if self.Y is None else self.Y[idx]
            eps = torch.randn(L, len(idx), self.noise_dim)
            loss = self.model.loss(self.X[idx], y, eps, objective, free_bits)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
        return time.perf_counter() - t0

    def finish(self):
        torch = self.torch
        torch.manual_seed(0)
        with torch.no_grad():
            eps = torch.randn(1, self.Xt.shape[0], self.noise_dim)
            return {"nelbo": self.model.loss(self.Xt, self.Yt, eps).item()}


# ===================================================== the check: same weights, same noise, same loss


def check_row(key, seed=0, B=7, L=3):
    """Max relative difference between npvae's loss and PyTorch's, float64, same weights and noise."""
    label, kind, model_kw, fit_kw = ROWS[key]
    torch, Family = torch_family()
    model = npvae_model(kind, model_kw, dtype=np.float64, seed=seed)
    tmodel = Family(kind, model_kw).double()
    for name, net in tmodel.nets.items():
        linears = [layer for layer in net if isinstance(layer, torch.nn.Linear)]
        for k, layer in enumerate(linears):
            tag = "out" if k == len(linears) - 1 else str(k)
            layer.weight.data = torch.from_numpy(model.params[f"{name}.{tag}.W"].T.copy())
            layer.bias.data = torch.from_numpy(model.params[f"{name}.{tag}.b"].copy())
    rng = np.random.default_rng(seed)
    x = rng.random((B, D))
    y = rng.integers(0, C, B)
    eps = rng.standard_normal((L, B, model.noise_dim))
    xa = model.join(x, y) if kind == "conditional" else x
    objective, free_bits = fit_kw.get("objective", "elbo"), fit_kw.get("free_bits", 0.0)
    ours = model._loss(xa, eps, 1.0, objective, free_bits).loss
    ty = torch.nn.functional.one_hot(torch.from_numpy(y), C).double() if kind == "conditional" else None
    theirs = tmodel.loss(torch.from_numpy(x), ty, torch.from_numpy(eps), objective, free_bits).item()
    return abs(ours - theirs) / abs(ours), ours, theirs


# ===================================================== the driver


RUNNERS = {"floor": FloorRunner, "npvae": NpvaeRunner, "torch": TorchRunner}


def serve(row, impl, seed):
    """Worker: answer "epoch" / "finish" lines on stdin with JSON lines."""
    label, kind, model_kw, fit_kw = ROWS[row]
    runner = RUNNERS[impl](kind, model_kw, fit_kw, load_data(), seed)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if line.strip() == "epoch":
            print(json.dumps({"seconds": runner.epoch()}), flush=True)
        else:
            print(json.dumps(runner.finish()), flush=True)
            return


class Worker:
    def __init__(self, row, impl, seed):
        self.impl, self.seconds = impl, []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.family", "--worker", impl, "--rows", row, "--seed", str(seed)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

    def ask(self, line=None):
        if line is not None:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
        out = self.proc.stdout.readline()
        if not out:
            raise RuntimeError(f"worker {self.impl} died (see its stderr above)")
        return json.loads(out)


def run_row(row, epochs, seed):
    workers = [Worker(row, impl, seed) for impl in IMPLS]
    for wk in workers:
        wk.ask()  # ready
    loads = []
    for r in range(epochs):
        loads.append(os.getloadavg()[0])
        shift = r % len(workers)
        for wk in workers[shift:] + workers[:shift]:
            wk.seconds.append(wk.ask("epoch")["seconds"])
    result = {}
    for wk in workers:
        timed = wk.seconds[1:] or wk.seconds
        result[wk.impl] = {"s_epoch": float(np.median(timed)), "best": float(np.min(timed)),
                           "seconds": wk.seconds, **wk.ask("finish")}
        wk.proc.wait(timeout=60)
    result["load"] = float(np.mean(loads))
    return result


def format_table(results):
    lines = ["| model / objective | GEMM floor s | npvae s | x floor | PyTorch s | PyTorch / npvae | "
             "held-out -ELBO npvae / PyTorch | load |", "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |"]
    for row, r in results.items():
        f, n, t = r["floor"], r["npvae"], r["torch"]
        lines.append(f"| {ROWS[row][0]} | {f['s_epoch']:.3f} | {n['s_epoch']:.3f} | "
                     f"{n['s_epoch'] / f['s_epoch']:.2f} | {t['s_epoch']:.3f} | {t['s_epoch'] / n['s_epoch']:.2f} | "
                     f"{n['nelbo']:.1f} / {t['nelbo']:.1f} | {r['load']:.2f} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description="the VAE family against PyTorch and its GEMM floors")
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated, from {', '.join(ROWS)}")
    parser.add_argument("--epochs", type=int, default=5, help="epochs per implementation, the first a warm-up")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--check", action="store_true", help="compare the PyTorch losses with npvae's")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--worker", choices=IMPLS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    rows = args.rows.split(",")
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        parser.error(f"unknown rows {unknown}; choose from {', '.join(ROWS)}")
    if args.worker:
        return serve(rows[0], args.worker, args.seed)
    if args.check:
        worst = 0.0
        for row in rows:
            rel, ours, theirs = check_row(row)
            worst = max(worst, rel)
            print(f"{row:<10} npvae {ours:.10f}  pytorch {theirs:.10f}  rel {rel:.1e}")
        print("all agree to 1e-6" if worst < 1e-6 else "MISMATCH")
        return 0 if worst < 1e-6 else 1
    print(f"npvae family benchmark: MNIST 8k / 2k, batch {BATCH}, 2 threads, {args.epochs} epochs; "
          f"started {time.strftime('%H:%M:%S')} UTC, load {os.getloadavg()[0]:.2f}", flush=True)
    results = {}
    for row in rows:
        results[row] = run_row(row, args.epochs, args.seed)
        r = results[row]
        print(f"  {row:<10} floor {r['floor']['s_epoch']:.3f}  npvae {r['npvae']['s_epoch']:.3f}  "
              f"torch {r['torch']['s_epoch']:.3f} s/epoch", flush=True)
    print()
    print(format_table(results))
    print(f"\nended {time.strftime('%H:%M:%S')} UTC, load {os.getloadavg()[0]:.2f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
