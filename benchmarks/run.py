"""npvae against the GEMM floor and PyTorch on the reference workload.

    python -m benchmarks.run                 # everything: about 10 minutes on 2 cores
    python -m benchmarks.run --quick         # MNIST 8k only, 4 epochs: about 1 minute
    python -m benchmarks.run --workloads fashion-128 --impls floor,numba,torch

Model 784-400-(20)-400-784, ReLU, Bernoulli from logits, analytic KL, Adam lr 1e-3, float32.
Every implementation runs in its own process (2 threads for BLAS, numba and PyTorch), so
its peak memory is its own. The machine is shared, so the processes take turns epoch by
epoch (round r: floor, numba, numpy, torch, in an order rotated every round): load from
other users falls on all of them alike, and the ratios stay meaningful when absolute
times do not. Columns:

* s/epoch: median of the epochs after the first (the warm-up). npvae: the epoch time
  npvae.fit reports; PyTorch: the same loop written in torch; floor: see below.
* best: the fastest of those epochs (the least disturbed by other users).
* x floor: s/epoch over the GEMM floor's (1.00 is the floor; lower is impossible).
* torch/this: PyTorch's s/epoch over this one's (above 1: faster than PyTorch).
* -ELBO: held-out negative ELBO (nats, one posterior sample per example, noise seeded)
  after the same number of epochs for every implementation.
* peak MB: the process's peak resident memory (ru_maxrss); +train MB: its growth from just
  before training (data loaded, libraries imported) to the peak.

The GEMM floor runs, for every step of an epoch, only the matrix products of a training
step, float32 NumPy BLAS into preallocated outputs: 4 forward (x W1, h W2 with the mu and
logvar heads fused into one 400x40 product, z W3, h W4) and 7 backward (dW4, dh, dW3, dz,
dW2, dh1, dW1; the input layer needs no dx).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

THREADS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")

if __name__ == "__main__":  # fix the thread counts before numpy, numba or torch load
    _threads = "2"
    if "--threads" in sys.argv:
        _threads = sys.argv[sys.argv.index("--threads") + 1]
    for _var in THREADS_ENV:
        os.environ[_var] = _threads

import numpy as np  # noqa: E402

WORKLOADS = {  # name -> (dataset, batch size, epochs in a full run)
    "fashion-128": ("fashion-mnist", 128, 4),
    "fashion-32": ("fashion-mnist", 32, 4),
    "mnist-128": ("mnist-8k", 128, 10),
    "mnist-32": ("mnist-8k", 32, 10),
}
IMPLS = ("floor", "numba", "numpy", "torch")
NAMES = {"floor": "GEMM floor", "numba": "npvae-numba", "numpy": "npvae-numpy",
         "torch": "pytorch"}
D, H, M = 784, 400, 20


# ===================================================== workers (one process each)


def load_data(dataset):
    """(x_train, x_test) float32 in [0, 1]: full Fashion-MNIST, or MNIST t10k split 8k / 2k."""
    from npvae import data

    if dataset == "fashion-mnist":
        ds = data.load_dataset("fashion-mnist", download=False)
        return ds.x_train, ds.x_test
    x_train, x_test, _, _ = data.mnist_split(os.environ.get("NPVAE_MNIST_DIR"), download=False)
    return x_train, x_test


def _rss_mb():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb():
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


class NpvaeRunner:
    """npvae.fit, one epoch per call, under the "numba" or "numpy" backend."""

    def __init__(self, backend, x_train, x_test, batch, seed, threads):
        import npvae

        npvae.set_backend(backend)
        if backend == "numba":
            import npvae.fast.kernels  # noqa: F401  (numba + llvmlite: in peak MB, not +train MB)
        self.npvae, self.x_train, self.x_test, self.batch, self.seed = (
            npvae, x_train, x_test, batch, seed)
        self.model = npvae.VAE(D, M, hidden=(H,), likelihood="bernoulli", dtype=np.float32,
                               seed=seed)
        self.opt = npvae.Adam(lr=1e-3)
        self.epochs = 0

    def epoch(self):
        self.epochs += 1  # each epoch its own shuffling and noise seed; Adam's state persists
        history = self.npvae.fit(self.model, self.x_train, epochs=1, batch_size=self.batch,
                                 optimizer=self.opt, seed=1000 * self.seed + self.epochs)
        return history.seconds[-1]

    def finish(self):
        return {"nelbo": self.npvae.negative_elbo(self.model, self.x_test, seed=0)[0]}


class TorchRunner:
    """The same model, loss (BCE-with-logits summed + analytic KL, per example) and Adam."""

    def __init__(self, x_train, x_test, batch, seed, threads):
        import torch
        import torch.nn.functional as F

        torch.set_num_threads(threads)
        torch.manual_seed(seed)

        class TorchVAE(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.fc1 = torch.nn.Linear(D, H)
                self.fc2 = torch.nn.Linear(H, 2 * M)  # [mu | logvar], like npvae's encoder.out
                self.fc3 = torch.nn.Linear(M, H)
                self.fc4 = torch.nn.Linear(H, D)

            def forward(self, x):
                mu, logvar = self.fc2(F.relu(self.fc1(x))).chunk(2, dim=1)
                z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
                return self.fc4(F.relu(self.fc3(z))), mu, logvar

        def loss_sum(x):
            logits, mu, logvar = self.model(x)
            rec = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
            kl = 0.5 * torch.sum(mu * mu + logvar.exp() - 1 - logvar)
            return rec + kl

        self.torch, self.loss_sum, self.batch = torch, loss_sum, batch
        self.model = TorchVAE()
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.X, self.Xt = torch.from_numpy(x_train), torch.from_numpy(x_test)

    def epoch(self):
        t0 = time.perf_counter()
        n = self.X.shape[0]
        perm = self.torch.randperm(n)
        for start in range(0, n, self.batch):
            xb = self.X[perm[start:start + self.batch]]
            loss = self.loss_sum(xb) / xb.shape[0]  # nats per example, like npvae
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
        return time.perf_counter() - t0

    def finish(self):
        self.torch.manual_seed(0)
        with self.torch.no_grad():
            total = sum(float(self.loss_sum(self.Xt[i:i + 1000]))
                        for i in range(0, self.Xt.shape[0], 1000))
        return {"nelbo": total / self.Xt.shape[0]}


def gemm_products(B, seed=0):
    """The 11 matrix products of one training step at batch B, on preallocated arrays."""
    rng = np.random.default_rng(seed)

    def r(*shape):
        return rng.standard_normal(shape, dtype=np.float32)

    x, W1, W2, W3, W4 = r(B, D), r(D, H), r(H, 2 * M), r(M, H), r(H, D)
    h1, hd, z, h3, out = r(B, H), r(B, 2 * M), r(B, M), r(B, H), r(B, D)
    dW1, dW2, dW3, dW4 = r(D, H), r(H, 2 * M), r(M, H), r(H, D)
    dh3, dz, dh1 = r(B, H), r(B, M), r(B, H)
    mm = np.matmul
    return [
        lambda: mm(x, W1, out=h1), lambda: mm(h1, W2, out=hd),  # forward
        lambda: mm(z, W3, out=h3), lambda: mm(h3, W4, out=out),
        lambda: mm(h3.T, out, out=dW4), lambda: mm(out, W4.T, out=dh3),  # backward
        lambda: mm(z.T, dh3, out=dW3), lambda: mm(dh3, W3.T, out=dz),
        lambda: mm(h1.T, hd, out=dW2), lambda: mm(hd, W2.T, out=dh1),
        lambda: mm(x.T, dh1, out=dW1),
    ]


class FloorRunner:
    """An epoch of nothing but the products: every full batch, then the smaller last one."""

    def __init__(self, x_train, x_test, batch, seed, threads):
        n = x_train.shape[0]
        self.full, rest = divmod(n, batch)
        self.step = gemm_products(batch)
        self.tail = gemm_products(rest) if rest else []

    def epoch(self):
        return time_products(self.step, self.full, self.tail)

    def finish(self):
        return {}


def time_products(step, full, tail):
    """Seconds to run the products of `step` `full` times, then those of `tail` once."""
    t0 = time.perf_counter()
    for _ in range(full):
        for product in step:
            product()
    for product in tail:
        product()
    return time.perf_counter() - t0


def serve(args):
    """Worker: build the runner, then answer "epoch" / "finish" lines on stdin with JSON."""
    dataset, batch, _ = WORKLOADS[args.workload]
    x_train, x_test = load_data(dataset)
    if args.worker == "floor":
        runner = FloorRunner(x_train, x_test, batch, args.seed, args.threads)
    elif args.worker == "torch":
        runner = TorchRunner(x_train, x_test, batch, args.seed, args.threads)
    else:
        runner = NpvaeRunner(args.worker, x_train, x_test, batch, args.seed, args.threads)
    rss0 = _rss_mb()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if line.strip() == "epoch":
            print(json.dumps({"seconds": runner.epoch()}), flush=True)
        else:
            peak = _peak_rss_mb()
            print(json.dumps({**runner.finish(), "peak_mb": peak, "train_mb": peak - rss0}),
                  flush=True)
            return


def cold_start():
    """Fresh process: import npvae, build the model, one fused step + Adam step (kernels cached)."""
    t0 = time.perf_counter()
    import npvae

    t_import = time.perf_counter() - t0
    model = npvae.VAE(D, M, hidden=(H,), dtype=np.float32, seed=0)
    opt = npvae.Adam(lr=1e-3)
    rng = np.random.default_rng(0)
    x = (rng.random((128, D)) < 0.3).astype(np.float32)
    eps = rng.standard_normal((1, 128, M), dtype=np.float32)
    model._loss_and_grads(x, eps, 1.0)
    opt.step(model.flat_params, model.flat_grads)
    return {"import_s": t_import, "first_step_s": time.perf_counter() - t0,
            "backend": npvae.get_backend()}


# ===================================================== driver

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Worker:
    """A worker process of this module, driven line by line."""

    def __init__(self, impl, workload, seed, threads):
        self.impl, self.seed = impl, seed
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.run", "--worker", impl, "--workload", workload,
             "--seed", str(seed), "--threads", str(threads)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
            env=dict(os.environ))
        self.seconds, self.result = [], {}

    def ask(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.read()

    def read(self):
        out = self.proc.stdout.readline()
        if not out:
            raise RuntimeError(f"worker {self.impl} died (see its stderr above)")
        return json.loads(out)


def run_workload(w, impls, epochs, args):
    """Interleaved epochs of every implementation; returns one row dict per worker."""
    plan = [(impl, args.seed) for impl in impls]
    if "numba" in impls and WORKLOADS[w][0] == "mnist-8k":
        plan += [("numba", args.seed + k) for k in range(1, args.noise_seeds + 1)]
    workers = [Worker(impl, w, seed, args.threads) for impl, seed in plan]
    for wk in workers:
        wk.read()  # ready: data loaded, model built
    loads = []
    for r in range(epochs):
        loads.append(os.getloadavg()[0])
        shift = r % len(workers)
        for wk in workers[shift:] + workers[:shift]:
            wk.seconds.append(wk.ask("epoch")["seconds"])
    for wk in workers:
        wk.result = wk.ask("finish")
        wk.proc.wait(timeout=60)
    rows = []
    for wk in workers:
        timed = wk.seconds[1:] if len(wk.seconds) > 1 else wk.seconds
        name = NAMES[wk.impl] + (f" (seed {wk.seed})" if wk.seed != args.seed else "")
        rows.append({"workload": w, "impl": name, "key": wk.impl if wk.seed == args.seed else None,
                     "epochs": epochs, "seconds": wk.seconds, "s_epoch": float(np.median(timed)),
                     "best": float(np.min(timed)), "load": float(np.mean(loads)), **wk.result})
    per = {r["key"]: r for r in rows if r["key"]}
    for row in rows:
        if "floor" in per:
            row["x_floor"] = row["s_epoch"] / per["floor"]["s_epoch"]
        if "torch" in per:
            row["x_torch"] = per["torch"]["s_epoch"] / row["s_epoch"]
    return rows


def spawn_cold():
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "benchmarks.run", "--worker", "cold"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT,
                          env=dict(os.environ))
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        return {"error": done.stderr.strip()[-300:], "process_wall_s": wall}
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "process_wall_s": wall}


def torch_available():
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def format_table(rows):
    head = (f"{'workload':<12} {'implementation':<21} {'s/epoch':>8} {'best':>7} {'x floor':>8} "
            f"{'torch/this':>10} {'-ELBO':>7} {'peak MB':>8} {'+train MB':>9} {'load':>5}")
    lines = [head, "-" * len(head)]
    for r in rows:
        def f(key, fmt):
            v = r.get(key)
            width = int(fmt.split(".")[0])
            return format(v, fmt) if isinstance(v, (int, float)) else "-".rjust(width)
        lines.append(f"{r['workload']:<12} {r['impl']:<21} {f('s_epoch', '8.3f')} "
                     f"{f('best', '7.3f')} {f('x_floor', '8.2f')} {f('x_torch', '10.2f')} "
                     f"{f('nelbo', '7.2f')} {f('peak_mb', '8.0f')} {f('train_mb', '9.1f')} "
                     f"{f('load', '5.2f')}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description="npvae vs the GEMM floor and PyTorch")
    parser.add_argument("--workloads", default=",".join(WORKLOADS),
                        help=f"comma-separated, from {', '.join(WORKLOADS)}")
    parser.add_argument("--impls", default=",".join(IMPLS), help=f"from {', '.join(IMPLS)}")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs per implementation (the first is the warm-up); "
                             "default 4 for Fashion-MNIST, 10 for MNIST 8k")
    parser.add_argument("--quick", action="store_true", help="MNIST 8k only, 4 epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noise-seeds", type=int, default=1,
                        help="extra npvae-numba seeds per MNIST workload, to show run-to-run noise")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-profile", action="store_true", help="skip the per-phase step profile")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--workload", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker == "cold":
        print(json.dumps(cold_start()))
        return 0
    if args.worker:
        serve(args)
        return 0

    workloads = ["mnist-128", "mnist-32"] if args.quick else args.workloads.split(",")
    impls = [i for i in args.impls.split(",") if i != "torch" or torch_available()]
    start_load = os.getloadavg()
    print(f"npvae benchmark: {args.threads} threads; started {time.strftime('%H:%M:%S')} UTC; "
          f"load {start_load[0]:.2f} {start_load[1]:.2f} {start_load[2]:.2f}", flush=True)
    rows = []
    for w in workloads:
        epochs = args.epochs or (4 if args.quick else WORKLOADS[w][2])
        new = run_workload(w, impls, epochs, args)
        for row in new:
            print(f"  {w:<12} {row['impl']:<21} {row['s_epoch']:.3f} s/epoch", flush=True)
        rows += new

    cold = [spawn_cold() for _ in range(2)]  # the first may compile if the cache is stale
    end_load = os.getloadavg()
    print()
    print(format_table(rows))
    c = cold[-1]
    print(f"\ncold start (fresh process, kernels cached, backend {c.get('backend')}): "
          f"import npvae {c.get('import_s', float('nan')):.2f} s; import + first step "
          f"{c.get('first_step_s', float('nan')):.2f} s; whole process incl. interpreter "
          f"{c['process_wall_s']:.2f} s "
          f"(first of two runs: {cold[0].get('first_step_s', float('nan')):.2f} s)")
    print("epochs per implementation (first = warm-up): "
          + ", ".join(f"{w} {args.epochs or (4 if args.quick else WORKLOADS[w][2])}"
                      for w in workloads) + "; implementations took turns epoch by epoch")
    print(f"load average at the end: {end_load[0]:.2f} {end_load[1]:.2f} {end_load[2]:.2f} "
          f"({time.strftime('%H:%M:%S')} UTC)", flush=True)

    profiles = {}
    if not args.no_profile:
        from .profile_step import format_profile, profile

        for batch in (128, 32):
            prof_rows, whole = profile(batch, steps=200)
            profiles[batch] = {"phases": prof_rows, "whole_ms": whole}
            print()
            print(format_profile(prof_rows, whole, batch))
        print(f"load {os.getloadavg()[0]:.2f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"rows": rows, "cold": cold, "profiles": profiles}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
