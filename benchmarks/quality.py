"""Quality report: the VAE family trained for one fixed budget, evaluated honestly.

For each data set (the MNIST 8k / 2k split of the MNIST test set, found through $NPVAE_MNIST_DIR
or the dataset lookup, and full Fashion-MNIST from
Debian's dataset-fashion-mnist) and each model -- the VAE, a beta-VAE, the VAE trained with
the IWAE bound at k = 5 and k = 50, and the two-stochastic-layer model -- train for the same
number of epochs, then report on held-out images: the negative ELBO, the importance-weighted
estimate of -log p(x) with k = 1000, the number of active latent units and the training time.

    python benchmarks/quality.py                       # both data sets, 10 epochs
    python benchmarks/quality.py --datasets mnist --epochs 2 --n-eval 200   # a quick look

Pixels are grey levels in [0, 1] under a Bernoulli likelihood, as in most published VAE
tables for these sets; for non-binary pixels that is a cross-entropy, not a normalised density,
so the numbers compare across models here, not with results on binarised MNIST.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")
os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np  # noqa: E402

import npvae  # noqa: E402
from npvae.data import load_dataset, mnist_split  # noqa: E402
from npvae.models.hierarchical import HierarchicalVAE  # noqa: E402

# name -> (model factory, fit options). One budget for all: the same epochs and batch size.
MODELS = {
    "VAE": (lambda D: npvae.VAE(D, 20, hidden=(400,), seed=0), {}),
    "beta-VAE (beta 4)": (lambda D: npvae.VAE(D, 20, hidden=(400,), seed=0), {"beta": 4.0}),
    "IWAE k=5": (lambda D: npvae.VAE(D, 20, hidden=(400,), seed=0),
                 {"objective": "iwae", "n_samples": 5}),
    "IWAE k=50": (lambda D: npvae.VAE(D, 20, hidden=(400,), seed=0),
                  {"objective": "iwae", "n_samples": 50}),
    "two-layer (100, 50)": (lambda D: HierarchicalVAE(D, (100, 50), hidden=((200, 200), (100, 100)),
                                                      activation="tanh", seed=0), {}),
}


def load(name):
    if name == "mnist":
        x_train, x_test, _, _ = mnist_split(os.environ.get("NPVAE_MNIST_DIR"))
        return x_train, x_test
    data = load_dataset(name, download=False)
    return data.x_train, data.x_test


def evaluate(model, x_test, n_eval, k):
    x_eval = x_test[:n_eval]
    neg_elbo = npvae.negative_elbo(model, x_eval, seed=1)[0]
    nll = -float(np.mean(npvae.log_likelihood(model, x_eval, k=k, seed=1)))
    n_active, _ = npvae.active_units(model, x_eval)
    return neg_elbo, nll, n_active


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["mnist", "fashion-mnist"])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS),
                        metavar="MODEL")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--k", type=int, default=1000, help="importance samples for -log p(x)")
    parser.add_argument("--n-eval", type=int, default=2000, help="held-out images evaluated")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "QUALITY.md"))
    args = parser.parse_args(argv)

    lines = [f"Trained {args.epochs} epochs, batch {args.batch_size}, Adam 1e-3, float32, "
             f"backend {npvae.get_backend()}; evaluated on the first {args.n_eval} held-out "
             f"images; -log p(x) from k = {args.k} importance samples.", "",
             "| data | model | test -ELBO (nats) | test -log p(x), k=%d | active units | train s |" % args.k,
             "| --- | --- | --- | --- | --- | --- |"]
    for dataset in args.datasets:
        x_train, x_test = load(dataset)
        for name in args.models:
            factory, options = MODELS[name]
            model = factory(x_train.shape[1])
            start = time.perf_counter()
            npvae.fit(model, x_train, epochs=args.epochs, batch_size=args.batch_size,
                      optimizer=npvae.Adam(1e-3), seed=0, **options)
            seconds = time.perf_counter() - start
            neg_elbo, nll, n_active = evaluate(model, x_test, args.n_eval, args.k)
            units = model.latent_dim
            row = (f"| {dataset} | {name} | {neg_elbo:.1f} | {nll:.1f} | {n_active} / {units} "
                   f"| {seconds:.0f} |")
            print(row, flush=True)
            lines.append(row)
    text = "\n".join(lines) + "\n\nReproduce: `python benchmarks/quality.py " + " ".join(
        argv if argv is not None else sys.argv[1:]) + "`\n"
    with open(args.out, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
