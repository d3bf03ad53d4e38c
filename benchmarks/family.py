"""The VAE family against PyTorch CPU and each model's own GEMM floor, side by side in one run.

    python -m benchmarks.family                     # every row, 5 epochs each: about 3.5 minutes on 2 cores
    python -m benchmarks.family --quick             # 3 epochs, without the k = 50 row: about 1 minute
    python -m benchmarks.family --rows vae,iwae5 --json /tmp/family.json
    python -m benchmarks.family --check             # the PyTorch losses and gradients equal npvae's
    python -m benchmarks.family --products          # the matrix products of each row's GEMM floor

MNIST t10k split 8,000 / 2,000 (from --mnist-dir, else $NPVAE_MNIST_DIR, else npvae's
dataset lookup; never downloaded), batch 128, float32, Adam lr 1e-3, 2 threads. A row is a
model and its objective (ROWS). For every row three implementations run, each in its own
process, and take turns epoch by epoch, the order rotated every round, so load from other
users falls on all of them alike (the method of benchmarks/run.py):

* npvae: `npvae.fit` under the "numba" backend, one epoch per request with an `npvae.Adam`
  that persists across epochs; the time is the one fit reports (history.seconds).
* pytorch: the same architecture, data, loss and optimizer (torch.optim.Adam, lr 1e-3) in
  torch on the CPU, started from the npvae model's initial weights (the same seed), so the
  held-out figures compare. `--check` shows its loss and gradients equal npvae's.
* GEMM floor: only the matrix products of the model's training step, float32 NumPy BLAS
  into preallocated outputs, for every step of an epoch (62 steps of 128, one of 64). Each
  linear layer of each MLP costs a forward x W, a backward dW = x^T dy and, except for the
  layer that reads the data, a backward dx = dy W^T. The rows of the decoder side are
  n_samples * batch (IWAE k = 50: 6400 rows). `--products` lists them. An implementation
  that does its products with BLAS cannot beat it.

Columns: s/epoch (median of the epochs after the first, the warm-up), best (the fastest of
them), x floor (s/epoch over the floor's), torch/this (PyTorch's s/epoch over this one's:
above 1 = faster than PyTorch), -ELBO (held-out negative ELBO after the same epochs, one
posterior sample per image with seeded noise: `npvae.negative_elbo` for npvae, the same sum
in torch), -IWAE (IWAE rows: held-out negative k-sample bound, `npvae.log_likelihood` with
the row's k), load (1-minute load average, mean over the rounds; the busy worker counts
about 2 itself, with its two threads), steal % (the share of CPU time the hypervisor gave
to other guests while the row ran, from /proc/stat: load from outside this machine, which
the load average does not show).

The loss of every row is in nats per example: summed over pixels, averaged over the batch
and the L samples. ELBO: -mean log p(x|z) + mean_b KL (analytic); IWAE: -mean_b log mean_l w;
free bits: the KL term is sum_j max(mean_b KL_bj, lambda); beta-TCVAE: -mean log p(x|z) +
mean over the L B codes of alpha MI + beta TC + gamma DWKL, q(z) estimated over the batch with
the stratified weights of npvae.tcvae for a training set of N rows; the two-layer model's ELBO
is -mean log w with every term sampled (npvae/models/hierarchical.py).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from typing import NamedTuple

THREADS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")

if __name__ == "__main__":  # fix the thread counts before numpy, numba or torch load
    _threads = sys.argv[sys.argv.index("--threads") + 1] if "--threads" in sys.argv else "2"
    for _var in THREADS_ENV:
        os.environ[_var] = _threads

import numpy as np  # noqa: E402

from .run import time_products  # noqa: E402

D, H, M, C = 784, 400, 20, 10  # pixels, hidden units, latent size, classes
HIER = dict(latent_dims=(100, 50), hidden=((200, 200), (100, 100)))  # the IWAE paper's net
BATCH = 128
LOG_2PI = math.log(2 * math.pi)
LOGVAR_MIN, LOGVAR_MAX = -9.0, 9.0  # the learned log-variance's soft clamp (npvae.likelihoods)


class Row(NamedTuple):
    label: str
    kind: str  # "vae", "conditional" or "hierarchical"
    model_kw: dict  # keywords of the npvae model beyond the sizes
    fit_kw: dict  # keywords of npvae.fit beyond the loop's


ROWS = {
    "vae": Row("VAE 784-400-(20)-400-784, Bernoulli, ELBO", "vae", {}, {}),
    "iwae5": Row("VAE, IWAE k = 5", "vae", {}, dict(objective="iwae", n_samples=5)),
    "iwae50": Row("VAE, IWAE k = 50", "vae", {}, dict(objective="iwae", n_samples=50)),
    "freebits": Row("VAE, free bits 0.5", "vae", {}, dict(free_bits=0.5)),
    "tcvae": Row("VAE, beta-TCVAE beta = 6", "vae", {}, dict(objective="tcvae", beta=6.0)),
    "cvae": Row("ConditionalVAE (784 + 10 classes)", "conditional", {}, {}),
    "hier-tanh": Row("HierarchicalVAE 100-50, tanh", "hierarchical", dict(activation="tanh"), {}),
    "hier-relu": Row("HierarchicalVAE 100-50, ReLU", "hierarchical", dict(activation="relu"), {}),
    "gauss": Row("VAE, learned-variance Gaussian", "vae", dict(likelihood="gaussian-learned"), {}),
    "cb": Row("VAE, continuous Bernoulli", "vae", dict(likelihood="continuous-bernoulli"), {}),
}
QUICK_SKIP = ("iwae50",)
IMPLS = ("floor", "npvae", "torch")
NAMES = {"floor": "GEMM floor", "npvae": "npvae (numba)", "torch": "PyTorch CPU"}


def n_samples(row):
    return row.fit_kw.get("n_samples", 1)


def tc_weights(row, dataset_size):
    """(alpha, beta, gamma, N) of a beta-TCVAE row (fit's defaults, N the training rows), else None."""
    if row.fit_kw.get("objective") != "tcvae":
        return None
    kw = row.fit_kw
    return kw.get("alpha", 1.0), kw.get("beta", 1.0), kw.get("gamma", 1.0), dataset_size


def load_data(mnist_dir):
    """(x_train, x_test, y_train, y_test): the MNIST t10k files split 8,000 / 2,000."""
    from npvae import data

    return data.mnist_split(data_dir=mnist_dir, download=False)


def npvae_model(row, dtype=np.float32, seed=0):
    import npvae

    if row.kind == "vae":
        return npvae.VAE(D, M, hidden=(H,), dtype=dtype, seed=seed, **row.model_kw)
    if row.kind == "conditional":
        return npvae.ConditionalVAE(D, C, latent_dim=M, hidden=(H,), dtype=dtype, seed=seed,
                                    **row.model_kw)
    return npvae.HierarchicalVAE(D, **HIER, dtype=dtype, seed=seed, **row.model_kw)


def mlps(row):
    """The model's MLPs: (npvae parameter prefix, sizes, rows per step, dx at the input?).

    In the order the step runs them forward. Rows: the encoder reads the batch; whatever
    sits after the first sample of z sees n_samples * batch rows.
    """
    B, L = BATCH, n_samples(row)
    P = 2 * D if row.model_kw.get("likelihood") == "gaussian-learned" else D
    if row.kind == "hierarchical":
        (m1, m2), (h1, h2) = HIER["latent_dims"], HIER["hidden"]
        return [("encoder1", [D, *h1, 2 * m1], B, False), ("encoder2", [m1, *h2, 2 * m2], L * B, True),
                ("decoder2", [m2, *h2[::-1], 2 * m1], L * B, True),
                ("decoder1", [m1, *h1[::-1], P], L * B, True)]
    c = C if row.kind == "conditional" else 0  # the one-hot label rides along both inputs
    return [("encoder", [D + c, H, 2 * M], B, False), ("decoder", [M + c, H, P], L * B, True)]


# ===================================================== the GEMM floor


def product_shapes(row, batch=BATCH):
    """[(what, (m, k), (k, n))] of one training step at this batch size."""
    out = []
    for name, sizes, rows, need_dx in mlps(row):
        R = rows // BATCH * batch
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            out.append((f"{name}[{i}] fwd", (R, a), (a, b)))
            out.append((f"{name}[{i}] dW", (a, R), (R, b)))
            if i > 0 or need_dx:
                out.append((f"{name}[{i}] dx", (R, b), (b, a)))
    # backward order does not matter for the time; forward first, as a step runs them
    return [p for p in out if p[0].endswith("fwd")] + [p for p in out if not p[0].endswith("fwd")]


def gemm_products(row, batch, seed=0):
    """Closures running each product of one step into preallocated float32 arrays.

    A transposed operand is a transposed view (x.T, W.T), as a real backward pass reads it.
    """
    rng = np.random.default_rng(seed)

    def r(*shape):
        return rng.standard_normal(shape, dtype=np.float32)

    products = []
    for what, (m, k), (_, n) in product_shapes(row, batch):
        if what.endswith("fwd"):  # y = x W
            x, W, y = r(m, k), r(k, n), r(m, n)
            products.append(lambda x=x, W=W, y=y: np.matmul(x, W, out=y))
        elif what.endswith("dW"):  # dW = x^T dy: x is (R, a)
            x, dy, dW = r(k, m), r(k, n), r(m, n)
            products.append(lambda x=x, dy=dy, dW=dW: np.matmul(x.T, dy, out=dW))
        else:  # dx = dy W^T: W is (a, b)
            dy, W, dx = r(m, k), r(n, k), r(m, n)
            products.append(lambda dy=dy, W=W, dx=dx: np.matmul(dy, W.T, out=dx))
    return products


class FloorRunner:
    """An epoch of nothing but the products: every full batch, then the smaller last one."""

    def __init__(self, row, data, seed):
        self.full, rest = divmod(data[0].shape[0], BATCH)
        self.step = gemm_products(row, BATCH, seed)
        self.tail = gemm_products(row, rest, seed) if rest else []
        self.gflop = 2e-9 * sum(m * k * n for _, (m, k), (_, n) in product_shapes(row)) * self.full + \
            2e-9 * sum(m * k * n for _, (m, k), (_, n) in product_shapes(row, rest))

    def epoch(self):
        return time_products(self.step, self.full, self.tail)

    def finish(self):
        return {"products": len(self.step), "gflop_epoch": self.gflop}


# ===================================================== npvae


class NpvaeRunner:
    def __init__(self, row, data, seed):
        import npvae

        npvae.set_backend("numba")
        self.npvae, self.row, self.seed, self.epochs = npvae, row, seed, 0
        self.model = npvae_model(row, seed=seed)
        x_train, x_test, y_train, y_test = data
        if row.kind == "conditional":
            x_train, x_test = self.model.join(x_train, y_train), self.model.join(x_test, y_test)
        self.x_train, self.x_test = x_train, x_test
        self.opt = npvae.Adam(lr=1e-3)

    def epoch(self):
        self.epochs += 1  # each epoch its own shuffling and noise seed; Adam's state persists
        history = self.npvae.fit(self.model, self.x_train, epochs=1, batch_size=BATCH,
                                 optimizer=self.opt, seed=1000 * self.seed + self.epochs,
                                 **self.row.fit_kw)
        return history.seconds[-1]

    def finish(self):
        out = {"nelbo": self.npvae.negative_elbo(self.model, self.x_test, seed=0)[0]}
        if self.row.fit_kw.get("objective") == "iwae":
            k = n_samples(self.row)
            out["niwae"] = -float(np.mean(self.npvae.log_likelihood(self.model, self.x_test, k=k,
                                                                    seed=0)))
        return out


# ===================================================== PyTorch


def torch_family():
    """(torch, TorchModel): the PyTorch twins of the rows' models and losses (torch loads lazily)."""
    import torch
    import torch.nn.functional as F

    def mlp(sizes, activation):
        layers = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(torch.nn.Linear(a, b))
            if i < len(sizes) - 2:  # the last layer is linear, as in npvae.layers.MLP
                layers.append(torch.nn.Tanh() if activation == "tanh" else torch.nn.ReLU())
        return torch.nn.Sequential(*layers)

    def soft_clamp(r):  # npvae.likelihoods.soft_clamp
        return LOGVAR_MIN + F.softplus(r - LOGVAR_MIN) - F.softplus(r - LOGVAR_MAX)

    def gaussian_learned(x, out):  # log N(x | f, exp(soft_clamp(r))), out = [f | r]
        f, r = out.chunk(2, -1)
        lv = soft_clamp(r)
        return -0.5 * torch.sum((x - f) ** 2 * torch.exp(-lv) + lv + LOG_2PI, -1)

    def log_lik(name, x, out):
        """log p(x | decoder output) summed over pixels: x (B, D), out (L, B, P) -> (L, B)."""
        if name == "bernoulli":
            return torch.sum(x * out - F.softplus(out), -1)
        if name == "continuous-bernoulli":  # + log C(l), C(l) = l / tanh(l / 2), even in l
            a = out.abs()
            small = a < 1e-3
            safe = torch.where(small, torch.ones_like(a), a)
            # log(a / tanh(a / 2)) = log a + log(1 + e^-a) - log(1 - e^-a); near 0: log 2 + a^2 / 12
            log_c = torch.where(small, math.log(2.0) + a * a / 12,
                                torch.log(safe) + torch.log1p(torch.exp(-safe))
                                - torch.log(-torch.expm1(-safe)))
            return torch.sum(x * out - F.softplus(out) + log_c, -1)
        if name == "gaussian-learned":
            return gaussian_learned(x, out)
        raise ValueError(f"no torch twin of the likelihood {name!r}")

    class TorchModel(torch.nn.Module):
        """One row's model; `nets` are keyed by npvae's parameter prefixes."""

        def __init__(self, row):
            super().__init__()
            self.row = row
            self.lik = row.model_kw.get("likelihood", "bernoulli")
            act = row.model_kw.get("activation", "tanh" if row.kind == "hierarchical" else "relu")
            self.nets = torch.nn.ModuleDict({name: mlp(sizes, act) for name, sizes, _, _ in mlps(row)})
            self.noise_dim = sum(HIER["latent_dims"]) if row.kind == "hierarchical" else M

        def linears(self):
            """(npvae parameter name of the layer, torch.nn.Linear) for every layer."""
            for name, net in self.nets.items():
                layers = [m for m in net if isinstance(m, torch.nn.Linear)]
                for i, layer in enumerate(layers):
                    yield (f"{name}.out" if i == len(layers) - 1 else f"{name}.{i}"), layer

        def load_npvae(self, model):
            """Copy an npvae model's weights: npvae's W is (in, out), torch's weight (out, in)."""
            with torch.no_grad():
                for name, layer in self.linears():
                    W, b = model.params[f"{name}.W"], model.params[f"{name}.b"]
                    assert W.T.shape == tuple(layer.weight.shape), (name, W.shape, layer.weight.shape)
                    layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))
                    layer.bias.copy_(torch.from_numpy(np.array(b)))
            return self

        def terms(self, x, y, eps):
            """(log p(x|z), log p(z) - log q(z|x)) per sample, (L, B) each, and the KL terms
            (B, m) of the analytic KL (None for the two-layer model, whose KL is sampled)."""
            if self.row.kind == "hierarchical":
                return self.hierarchical(x, eps)
            mu, lv, z, log_px = self.sample(x, y, eps)
            ratio = -0.5 * torch.sum(z * z - eps * eps, -1) + 0.5 * torch.sum(lv, -1)
            return log_px, ratio, 0.5 * (mu * mu + torch.exp(lv) - 1 - lv)

        def sample(self, x, y, eps):
            """(mu, logvar) (B, m) of q(z|x), z = mu + std eps (L, B, m), and log p(x|z) (L, B)."""
            enc_in = x if y is None else torch.cat([x, y], -1)
            mu, lv = self.nets["encoder"](enc_in).chunk(2, -1)  # (B, m) each
            z = mu + torch.exp(0.5 * lv) * eps  # (L, B, m)
            dec_in = z if y is None else torch.cat([z, y.expand(eps.shape[0], *y.shape)], -1)
            return mu, lv, z, log_lik(self.lik, x, self.nets["decoder"](dec_in))

        def hierarchical(self, x, eps):
            """log w = log p(x|z1) + log p(z1|z2) + log p(z2) - log q(z1|x) - log q(z2|z1)."""
            m1 = HIER["latent_dims"][0]
            e1, e2 = eps[..., :m1], eps[..., m1:]
            mu1, lv1 = self.nets["encoder1"](x).chunk(2, -1)
            z1 = mu1 + torch.exp(0.5 * lv1) * e1  # (L, B, m1)
            mu2, lv2 = self.nets["encoder2"](z1).chunk(2, -1)
            z2 = mu2 + torch.exp(0.5 * lv2) * e2  # (L, B, m2): one z2 per z1
            log_px = log_lik(self.lik, x, self.nets["decoder1"](z1))
            log_pz1 = gaussian_learned(z1, self.nets["decoder2"](z2))
            log_pz2 = -0.5 * torch.sum(z2 * z2 + LOG_2PI, -1)
            log_qz1 = -0.5 * torch.sum(e1 * e1 + lv1 + LOG_2PI, -1)  # eps fixed: z1 - mu1 = std e1
            log_qz2 = -0.5 * torch.sum(e2 * e2 + lv2 + LOG_2PI, -1)
            return log_px, log_pz1 + log_pz2 - log_qz1 - log_qz2, None

        def tcvae(self, x, eps, alpha, beta, gamma, N):
            """The beta-TCVAE loss: codes r = l B + i, q(z) and q(z_j) estimated over the batch."""
            L, B, m = eps.shape
            mu, lv, z, log_px = self.sample(x, None, eps)
            zr = z.reshape(L * B, m)
            psi = -0.5 * ((zr[:, None] - mu[None]) ** 2 * torch.exp(-lv[None]) + lv[None] + LOG_2PI)
            log_w = torch.full((B, B), math.log((N - 1) / (N * (B - 1))), dtype=x.dtype)
            log_w.fill_diagonal_(-math.log(N))  # 1/N on the own posterior
            lw = log_w[torch.arange(L * B) % B]  # (R, B): each code's mixture weights
            log_qz = torch.logsumexp(lw + psi.sum(-1), 1)
            log_qzj = torch.logsumexp(lw[:, :, None] + psi, 1).sum(-1)  # sum_j log q(z_j)
            log_q = -0.5 * torch.sum(eps * eps + lv + LOG_2PI, -1).reshape(L * B)  # log q(z | x_i)
            log_p = -0.5 * torch.sum(zr * zr + LOG_2PI, -1)
            latent = alpha * (log_q - log_qz) + beta * (log_qz - log_qzj) + gamma * (log_qzj - log_p)
            return -log_px.mean() + latent.mean()

        def loss(self, x, y, eps, objective="elbo", free_bits=0.0, tc=None):
            """The objective in nats per example, as npvae defines it (module docstring);
            tc: (alpha, beta, gamma, N) of the "tcvae" objective."""
            if objective == "tcvae":
                return self.tcvae(x, eps, *tc)
            log_px, ratio, kl_terms = self.terms(x, y, eps)
            if objective == "iwae":
                return -torch.mean(torch.logsumexp(log_px + ratio, 0) - math.log(eps.shape[0]))
            if kl_terms is None:  # every term sampled: -mean log w
                return -torch.mean(log_px + ratio)
            kl_dim = kl_terms.mean(0)  # (m,): the batch-mean KL of each dimension
            kl = torch.sum(torch.clamp(kl_dim, min=free_bits)) if free_bits else kl_dim.sum()
            return -log_px.mean() + kl

    return torch, TorchModel


class TorchRunner:
    def __init__(self, row, data, seed):
        torch, TorchModel = torch_family()
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
        torch.manual_seed(seed)
        self.torch, self.row = torch, row
        self.model = TorchModel(row).load_npvae(npvae_model(row, seed=seed))  # npvae's initial weights
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3)  # betas, eps as npvae.Adam
        x_train, x_test, y_train, y_test = data
        onehot = lambda y: torch.nn.functional.one_hot(torch.from_numpy(y), C).float()  # noqa: E731
        self.X, self.Xt = torch.from_numpy(x_train), torch.from_numpy(x_test)
        cond = row.kind == "conditional"
        self.Y, self.Yt = (onehot(y_train), onehot(y_test)) if cond else (None, None)
        self.L = n_samples(row)
        self.objective = row.fit_kw.get("objective", "elbo")
        self.free_bits = row.fit_kw.get("free_bits", 0.0)
        self.tc = tc_weights(row, x_train.shape[0])

    def epoch(self):
        torch, n = self.torch, self.X.shape[0]
        t0 = time.perf_counter()
        perm = torch.randperm(n)
        for start in range(0, n, BATCH):
            idx = perm[start:start + BATCH]
            y = None if self.Y is None else self.Y[idx]
            eps = torch.randn(self.L, len(idx), self.model.noise_dim)
            loss = self.model.loss(self.X[idx], y, eps, self.objective, self.free_bits, self.tc)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
        return time.perf_counter() - t0

    def finish(self):
        torch, n = self.torch, self.Xt.shape[0]
        torch.manual_seed(0)
        out = {}
        with torch.no_grad():
            eps = torch.randn(1, n, self.model.noise_dim)
            out["nelbo"] = self.model.loss(self.Xt, self.Yt, eps).item()
            if self.objective == "iwae":
                total, chunk = 0.0, 100
                for s in range(0, n, chunk):
                    xb = self.Xt[s:s + chunk]
                    eps = torch.randn(self.L, xb.shape[0], self.model.noise_dim)
                    total += self.model.loss(xb, None, eps, "iwae").item() * xb.shape[0]
                out["niwae"] = total / n
        return out


# ===================================================== the check: same weights, same noise, same loss


def check_row(key, x, y, seed=0):
    """npvae's float64 loss and gradients against the torch twin's, same weights and noise.

    x: (B, D) data in [0, 1], y: (B,) labels. L = the row's n_samples (3 for one-sample rows,
    so the average over samples is checked too). Returns a dict of the two losses, their
    relative difference and the largest gradient difference relative to the tensor's largest
    entry, over all parameter tensors.
    """
    import npvae

    row = ROWS[key]
    torch, TorchModel = torch_family()
    model = npvae_model(row, dtype=np.float64, seed=seed)
    rng = np.random.default_rng(seed + 1)
    for name, p in model.params.items():  # away from the init: biases are zero there
        if name.endswith(".b"):
            p += 0.1 * rng.standard_normal(p.shape)
    if row.fit_kw.get("free_bits"):  # lift half the dimensions' KL above the floor
        model.params["encoder.out.W"][:, :M // 2] *= 4.0
    tmodel = TorchModel(row).double().load_npvae(model)
    B, L = x.shape[0], (3 if n_samples(row) == 1 else n_samples(row))
    eps = rng.standard_normal((L, B, model.noise_dim))
    xa = model.join(x, y) if row.kind == "conditional" else x
    objective, free_bits = row.fit_kw.get("objective", "elbo"), row.fit_kw.get("free_bits", 0.0)
    tc = tc_weights(row, 8000)  # q(z) estimated as for the training split's 8,000 rows
    tc_kw = dict(zip(("alpha", "beta", "gamma", "dataset_size"), tc)) if tc else {}
    ours, grads = model.loss_and_grads(xa, eps=eps, objective=objective, free_bits=free_bits, **tc_kw)
    ty = torch.nn.functional.one_hot(torch.from_numpy(y), C).double() if row.kind == "conditional" else None
    t_loss = tmodel.loss(torch.from_numpy(x), ty, torch.from_numpy(eps), objective, free_bits, tc)
    t_loss.backward()
    grad_rel = 0.0
    for name, layer in tmodel.linears():
        for ours_g, theirs_g in ((grads[f"{name}.W"].T, layer.weight.grad), (grads[f"{name}.b"], layer.bias.grad)):
            theirs_g = theirs_g.numpy()
            scale = max(np.max(np.abs(theirs_g)), 1e-300)
            grad_rel = max(grad_rel, float(np.max(np.abs(ours_g - theirs_g)) / scale))
    theirs = t_loss.item()
    out = {"npvae": ours, "torch": theirs, "rel": abs(ours - theirs) / abs(ours), "grad_rel": grad_rel,
           "L": L, "B": B, "backend": npvae.get_backend()}
    if free_bits:  # how many dimensions sit above the floor (both branches of the max checked?)
        mu, logvar = model.encode(xa)
        kl_dim = np.mean(0.5 * (mu * mu + np.exp(logvar) - 1 - logvar), axis=0)
        out["above_floor"] = f"{int(np.sum(kl_dim > free_bits))}/{kl_dim.size}"
    return out


def run_check(keys, mnist_dir, tol=1e-6):
    try:
        x_train, _, y_train, _ = load_data(mnist_dir)
        x, y, source = x_train[:16].astype(np.float64), y_train[:16], "the first 16 MNIST training images"
    except FileNotFoundError:
        rng = np.random.default_rng(0)
        x, y, source = rng.random((16, D)), rng.integers(0, C, 16), "16 uniform random images (no MNIST)"
    print(f"float64, same weights (npvae's init, seed 0, biases set to 0.1 N(0, 1); free bits: "
          f"half the mu columns scaled by 4) and same noise; x = {source}")
    print("| row | L | npvae loss | PyTorch loss | loss rel diff | grad rel diff | note |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    worst, results = 0.0, {}
    for key in keys:
        r = check_row(key, x, y)
        results[key] = r
        worst = max(worst, r["rel"], r["grad_rel"])
        note = f"dims above the floor {r['above_floor']}" if "above_floor" in r else ""
        print(f"| {key} | {r['L']} | {r['npvae']:.10f} | {r['torch']:.10f} | {r['rel']:.1e} | "
              f"{r['grad_rel']:.1e} | {note} |", flush=True)
    ok = worst < tol
    print(f"\n{'PASS' if ok else 'FAIL'}: largest relative difference {worst:.1e} "
          f"(tolerance {tol:g}) under the {results[keys[0]]['backend']!r} backend")
    return ok, results


# ===================================================== the driver

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNNERS = {"floor": FloorRunner, "npvae": NpvaeRunner, "torch": TorchRunner}


def cpu_times():
    """(steal, total) jiffies of all CPUs from /proc/stat, or None where there is none."""
    try:
        with open("/proc/stat") as fh:
            fields = [int(v) for v in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return fields[7] if len(fields) > 7 else 0, sum(fields[:8])


def steal_share(t0, t1):
    if t0 is None or t1 is None or t1[1] <= t0[1]:
        return None
    return (t1[0] - t0[0]) / (t1[1] - t0[1])


def _peak_rss_mb():
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def serve(key, impl, seed, mnist_dir):
    """Worker: build the runner, then answer "epoch" / "finish" lines on stdin with JSON lines."""
    runner = RUNNERS[impl](ROWS[key], load_data(mnist_dir), seed)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if line.strip() == "epoch":
            print(json.dumps({"seconds": runner.epoch()}), flush=True)
        else:
            print(json.dumps({**runner.finish(), "peak_mb": _peak_rss_mb()}), flush=True)
            return


class Worker:
    """A worker process of this module, driven line by line."""

    def __init__(self, key, impl, args):
        self.impl, self.seconds = impl, []
        cmd = [sys.executable, "-m", "benchmarks.family", "--worker", impl, "--rows", key,
               "--seed", str(args.seed), "--threads", str(args.threads)]
        if args.mnist_dir:
            cmd += ["--mnist-dir", args.mnist_dir]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     cwd=ROOT, env=dict(os.environ))

    def ask(self, line=None):
        if line is not None:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
        out = self.proc.stdout.readline()
        if not out:
            raise RuntimeError(f"worker {self.impl} died (see its stderr above)")
        return json.loads(out)


def run_row(key, epochs, args):
    """Interleaved epochs of the three implementations; one result dict per implementation."""
    workers = [Worker(key, impl, args) for impl in IMPLS]
    for wk in workers:
        wk.ask()  # ready: data loaded, model built
    loads, cpu0 = [], cpu_times()
    for r in range(epochs):
        loads.append(os.getloadavg()[0])
        shift = r % len(workers)
        for wk in workers[shift:] + workers[:shift]:
            wk.seconds.append(wk.ask("epoch")["seconds"])
    steal = steal_share(cpu0, cpu_times())
    per = {}
    for wk in workers:
        timed = wk.seconds[1:] or wk.seconds
        per[wk.impl] = {"row": key, "impl": wk.impl, "seconds": wk.seconds,
                        "s_epoch": float(np.median(timed)), "best": float(np.min(timed)),
                        "load": float(np.mean(loads)), "steal": steal, **wk.ask("finish")}
        wk.proc.wait(timeout=60)
    for res in per.values():
        res["x_floor"] = res["s_epoch"] / per["floor"]["s_epoch"]
        res["x_torch"] = per["torch"]["s_epoch"] / res["s_epoch"]
    return [per[impl] for impl in IMPLS]


def format_table(results):
    lines = ["| model / objective | implementation | s/epoch | best | x floor | torch/this | "
             "-ELBO | -IWAE | load | steal % |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]

    def f(res, key, fmt):
        v = res.get(key)
        return format(v, fmt) if isinstance(v, (int, float)) else "-"

    for res in results:
        row = ROWS[res["row"]]
        iw = f"-IWAE-{n_samples(row)}" if "niwae" in res else None
        lines.append(f"| {row.label} | {NAMES[res['impl']]} | {f(res, 's_epoch', '.3f')} | "
                     f"{f(res, 'best', '.3f')} | {f(res, 'x_floor', '.2f')} | {f(res, 'x_torch', '.2f')} | "
                     f"{f(res, 'nelbo', '.1f')} | {f(res, 'niwae', '.1f') if iw else '-'} | "
                     f"{f(res, 'load', '.2f')} | "
                     f"{format(100 * res['steal'], '.1f') if res.get('steal') is not None else '-'} |")
    return "\n".join(lines)


def format_products(keys):
    lines = []
    for key in keys:
        shapes = product_shapes(ROWS[key])
        gflop = 2e-9 * sum(m * k * n for _, (m, k), (_, n) in shapes)
        lines.append(f"{key}: {len(shapes)} products, {gflop:.3f} GFLOP per step of {BATCH}")
        for what, (m, k), (_, n) in shapes:
            lines.append(f"    {what:<16} ({m} x {k}) @ ({k} x {n})")
    return "\n".join(lines)


def git_describe():
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=ROOT, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "npvae"],
                               capture_output=True, text=True, cwd=ROOT, timeout=10).stdout.strip()
        return rev + ("+local changes in npvae/" if dirty else "") if rev else "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def main(argv=None):
    parser = argparse.ArgumentParser(description="the VAE family against PyTorch CPU and its GEMM floors")
    parser.add_argument("--rows", default=None, help=f"comma-separated keys, from {', '.join(ROWS)}")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs per implementation, the first a warm-up (default 5; --quick 3)")
    parser.add_argument("--quick", action="store_true",
                        help="3 epochs per implementation; the k = 50 row only if --rows names it")
    parser.add_argument("--check", action="store_true",
                        help="compare the PyTorch losses and gradients with npvae's (float64) and exit")
    parser.add_argument("--products", action="store_true", help="list each row's floor products and exit")
    parser.add_argument("--mnist-dir", default=os.environ.get("NPVAE_MNIST_DIR"),
                        help="folder with the MNIST t10k IDX files (default: $NPVAE_MNIST_DIR)")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--worker", choices=IMPLS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    keys = args.rows.split(",") if args.rows else [k for k in ROWS if not (args.quick and k in QUICK_SKIP)]
    unknown = [k for k in keys if k not in ROWS]
    if unknown:
        parser.error(f"unknown rows {unknown}; choose from {', '.join(ROWS)}")
    if args.worker:
        serve(keys[0], args.worker, args.seed, args.mnist_dir)
        return 0
    if args.products:
        print(format_products(keys))
        return 0
    if args.check:
        ok, results = run_check(keys, args.mnist_dir)
        if args.json:
            with open(args.json, "w") as fh:
                json.dump({"check": results}, fh, indent=1)
        return 0 if ok else 1
    epochs = args.epochs or (3 if args.quick else 5)
    if epochs < 2:
        parser.error("--epochs must be at least 2 (one warm-up, one timed)")

    t_start, load0, cpu0 = time.time(), os.getloadavg(), cpu_times()
    rev = git_describe()
    print(f"npvae family benchmark (commit {rev}): MNIST 8k / 2k, batch {BATCH}, float32, "
          f"{args.threads} threads, {epochs} epochs (1 warm-up); started "
          f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(t_start))} UTC, load "
          f"{load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}", flush=True)
    results = []
    for key in keys:
        new = run_row(key, epochs, args)
        results += new
        print("  " + f"{key:<10}" + "  ".join(f"{r['impl']} {r['s_epoch']:.3f}" for r in new)
              + " s/epoch", flush=True)
    wall, load1, steal = time.time() - t_start, os.getloadavg(), steal_share(cpu0, cpu_times())
    print()
    print(format_table(results))
    print(f"\nMNIST t10k split 8,000 / 2,000, batch {BATCH}, float32, Adam lr 1e-3, {args.threads} "
          f"threads; {epochs} epochs per implementation (the first a warm-up), the three taking "
          f"turns epoch by epoch; npvae commit {rev}; {wall / 60:.1f} min, load "
          f"{load0[0]:.2f} at the start, {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f} at the end "
          f"({time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC)"
          + (f"; CPU steal {100 * steal:.1f}%" if steal is not None else ""), flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"rows": results, "epochs": epochs, "threads": args.threads, "commit": rev,
                       "wall_s": wall, "load_start": load0, "load_end": load1, "steal": steal,
                       "products": {k: product_shapes(ROWS[k]) for k in keys}}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
