"""The mutation harness: classic mistakes planted in a copy of npvae, each of which the
notebook on its topic must catch.

A notebook that runs green proves little unless its checks fail when the math is wrong.
Each `Mutation` below names one mistake people make when they derive or code a VAE (a KL
term dropped, the standard deviation taken for the variance, Adam without its bias
correction, ...), the file and the exact text it changes, and the notebook that covers
it. `run(mutation)` copies the package into a temporary folder, makes the one edit, runs
the notebook with that copy first on the kernel's import path, and reports whether an
assert in the notebook failed. A mutation counts as caught only by a failed assert
(AssertionError), not by a crash elsewhere, so the mistakes are the silent kind: the
code still runs and gives numbers.

    python tests/mutations.py                 # every mutation, a line each
    python tests/mutations.py adam-no-bias-correction

tests/test_mutations.py runs them all in the suite.
"""
from __future__ import annotations

import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import notebook_runner

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutation:
    name: str
    notebook: str  # stem of notebooks/<stem>.md
    file: str  # path under the repository, e.g. "npvae/optim.py"
    old: str  # text that occurs exactly once in the file
    new: str
    mistake: str  # the mistake in words


MUTATIONS = [
    # 01 -- the ELBO
    Mutation("kl-logvar-for-variance", "01_elbo", "npvae/distributions.py",
             "return 0.5 * (mu * mu + np.exp(logvar) - 1 - logvar)",
             "return 0.5 * (mu * mu + logvar - 1 - logvar)",
             "the KL with log sigma^2 where sigma^2 belongs"),
    Mutation("bernoulli-missing-normaliser", "01_elbo", "npvae/likelihoods.py",
             "return np.sum(x * out - softplus(out), axis=-1)",
             "return np.sum(x * out, axis=-1)",
             "a Bernoulli likelihood normaliser dropped (the softplus of the logits)"),
    # 02 -- the Gaussian KL
    Mutation("kl-drop-minus-one", "02_gaussian_kl", "npvae/distributions.py",
             "return 0.5 * (mu * mu + np.exp(logvar) - 1 - logvar)",
             "return 0.5 * (mu * mu + np.exp(logvar) - logvar)",
             "the KL without its -1 per dimension"),
    Mutation("kl-gradient-exp-for-expm1", "02_gaussian_kl", "npvae/distributions.py",
             "return mu, 0.5 * np.expm1(logvar)",
             "return mu, 0.5 * np.exp(logvar)",
             "the KL's gradient in log sigma^2 without its -1"),
    # 03 -- the reparameterisation trick
    Mutation("sampler-variance-as-std", "03_reparameterization", "npvae/distributions.py",
             "std = np.exp(0.5 * logvar)  # (B, m)",
             "std = np.exp(logvar)  # (B, m)",
             "a sampler that takes the variance exp(log sigma^2) for the standard deviation"),
    Mutation("reparameterisation-gradient-no-half", "03_reparameterization",
             "npvae/distributions.py",
             "dlogvar = (dz * eps).sum(axis=0) * (0.5 * std)",
             "dlogvar = (dz * eps).sum(axis=0) * std",
             "the reparameterisation gradient in log sigma^2 without its 1/2"),
    # 04 -- Dense layers
    Mutation("tanh-backward-missing-square", "04_dense_backprop", "npvae/layers.py",
             "return dy * (1 - y * y)",
             "return dy * (1 - y)",
             "tanh's derivative taken as 1 - tanh instead of 1 - tanh^2"),
    # 07 -- training
    Mutation("training-sampler-variance-as-std", "07_training", "npvae/distributions.py",
             "std = np.exp(0.5 * logvar)  # (B, m)",
             "std = np.exp(logvar)  # (B, m)",
             "a sampler that takes the variance for the standard deviation, seen in a "
             "training run (its numbers look better: the training notebook must notice)"),
    Mutation("log-likelihood-missing-log-k", "07_training", "npvae/evaluate.py",
             "result[start:start + B] = running - np.log(k)",
             "result[start:start + B] = running",
             "the importance-weighted log-likelihood estimate without its -log k"),
    # 08 -- variants
    Mutation("beta-ignored-in-the-gradient", "08_variants", "npvae/objectives.py",
             "kl_w.fill(beta / B)",
             "kl_w.fill(1.0 / B)",
             "a beta-VAE whose KL gradient ignores beta (the loss value still weighs it)"),
    # 09 -- the latent layer's backward
    Mutation("latent-weights-without-1-over-L", "09_latent_backward", "npvae/objectives.py",
             "w_rec.fill(-1.0 / (L * B))",
             "w_rec.fill(-1.0 / B)",
             "the latent layer's backward summing over the L samples instead of averaging"),
    # 05 -- likelihoods
    Mutation("gaussian-without-2pi", "05_likelihoods", "npvae/likelihoods.py",
             "- 0.5 * D * (LOG_2PI + 2 * np.log(self.sigma))",
             "- 0.5 * D * (2 * np.log(self.sigma))",
             "a Gaussian likelihood normaliser without its log 2 pi"),
    Mutation("continuous-bernoulli-unnormalised", "05_likelihoods", "npvae/likelihoods.py",
             "return np.sum(x * out - softplus(out) + ln, axis=-1)",
             "return np.sum(x * out - softplus(out), axis=-1)",
             "the continuous Bernoulli without its normaliser log C"),
    # 06 -- Adam
    Mutation("adam-no-bias-correction", "06_adam", "npvae/optim.py",
             "args = (dt(self.b1), dt(self.b2), dt(lr / c1), dt(c2), dt(self.eps),",
             "args = (dt(self.b1), dt(self.b2), dt(lr), dt(1.0), dt(self.eps),",
             "Adam without the bias correction of either moment"),
    Mutation("adam-decay-rates-swapped", "06_adam", "npvae/optim.py",
             "m *= b1\n    m += (1 - b1) * g\n    v *= b2\n    v += (1 - b2) * (g * g)",
             "m *= b2\n    m += (1 - b2) * g\n    v *= b1\n    v += (1 - b1) * (g * g)",
             "Adam with its two decay rates swapped"),
    # 10 -- the importance-weighted bound
    Mutation("iwae-missing-log-k", "10_iwae", "npvae/objectives.py",
             "return log_sum_exp(log_w) - np.log(log_w.shape[0])",
             "return log_sum_exp(log_w)",
             "the importance-weighted estimate without its -log k"),
    Mutation("iwae-weights-over-the-batch", "10_iwae", "npvae/objectives.py",
             "return shifted / shifted.sum(axis=0)",
             "return shifted / shifted.sum()",
             "the IWAE gradient's self-normalised weights normalised over the whole batch, "
             "not over each example's k samples"),
    # 11 -- two stochastic layers
    Mutation("two-layer-prior-of-z1-dropped", "11_two_layers", "npvae/models/hierarchical.py",
             "log_w[...] = log_pz1  # log p(z1|z2)",
             "log_w[...] = 0.0  # log p(z1|z2)",
             "the two-layer ELBO without its log p(z1|z2) term"),
    # 12 -- posterior collapse
    Mutation("free-bits-floor-on-total", "12_posterior_collapse", "npvae/objectives.py",
             "        kl_term = float(np.sum(np.maximum(kl_sum / B, free_bits)))",
             "        kl_term = max(kl, free_bits)",
             "free bits flooring the total KL instead of each dimension's"),
    Mutation("free-bits-gradient-kept", "12_posterior_collapse", "npvae/objectives.py",
             "        kl_w[kl_sum / B <= free_bits] = 0  # below the floor: no KL gradient",
             "        pass  # below the floor: the KL gradient is kept",
             "free bits whose floor leaves the KL gradient below it"),
    Mutation("warmup-off-by-one", "12_posterior_collapse", "npvae/train.py",
             "        return self.beta * min(1.0, t / self.warmup_steps) if self.warmup_steps else self.beta",
             "        return self.beta * min(1.0, (t - 1) / self.warmup_steps) if self.warmup_steps else self.beta",
             "KL warm-up one step behind its schedule (weight 0 at the first step)"),
    # 13 -- beta-TCVAE
    Mutation("tcvae-own-weight-1-over-NB", "13_tcvae", "npvae/tcvae.py",
             "np.fill_diagonal(log_w, -np.log(N))",
             "np.fill_diagonal(log_w, -np.log(N * B))",
             "the minibatch estimate of q(z) giving the example's own posterior weight 1/(N B) "
             "instead of 1/N"),
    Mutation("tcvae-gradient-sign-of-gamma-minus-beta", "13_tcvae", "npvae/tcvae.py",
             "(gamma - beta) * b) / R",
             "(beta - gamma) * b) / R",
             "the tcvae gradient with the sign of the (gamma - beta) coefficient flipped "
             "(the loss value still right)"),
    Mutation("tcvae-marginal-over-wrong-axis", "13_tcvae", "npvae/tcvae.py",
             "log_qzj = log_sum_exp(lw[:, :, None] + lp, axis=1)",
             "log_qzj = log_sum_exp(lw[:, :, None] + lp, axis=2)",
             "the marginals q(z_j) of the tcvae decomposition summed over the dimensions "
             "instead of the batch"),
    Mutation("tcvae-logvar-gradient-no-half", "13_tcvae", "npvae/tcvae.py",
             "dh[:, m:] = np.sum(g * 0.5 * (u * diff - 1), axis=0)",
             "dh[:, m:] = np.sum(g * (u * diff - 1), axis=0)",
             "the tcvae pairwise gradient in log sigma^2 without its 1/2"),
    Mutation("tcvae-mig-not-divided-by-entropy", "13_tcvae", "npvae/disentanglement.py",
             "gaps[varies] = (top_two[0, varies] - top_two[1, varies]) / entropies[varies]",
             "gaps[varies] = (top_two[0, varies] - top_two[1, varies])",
             "the mutual information gap not divided by the factor's entropy"),
    Mutation("tcvae-factor-vae-without-std", "13_tcvae", "npvae/disentanglement.py",
             "scaled = codes[:, kept] / std[kept]",
             "scaled = codes[:, kept]",
             "the FactorVAE score voting on codes not scaled to unit standard deviation"),
]


def plant(mutation, root):
    """Copy npvae into `root` and make the mutation's one edit there; returns the file."""
    target = Path(root) / "npvae"
    shutil.copytree(REPO / "npvae", target, ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"))
    path = Path(root) / mutation.file
    text = path.read_text()
    count = text.count(mutation.old)
    if count != 1:
        raise ValueError(f"{mutation.name}: the text to change occurs {count} times in "
                         f"{mutation.file}, not once (the library changed: update the mutation)")
    path.write_text(text.replace(mutation.old, mutation.new))
    return path


def run(mutation):
    """(caught, what happened): run the mutation's notebook on a mutated copy of npvae."""
    import nbclient

    with tempfile.TemporaryDirectory(prefix="npvae-mutant-") as root:
        plant(mutation, root)
        try:
            notebook_runner.run(REPO / "notebooks" / f"{mutation.notebook}.md", pythonpath=root)
        except nbclient.exceptions.CellExecutionError as err:
            return err.ename == "AssertionError", f"{err.ename}: {err.evalue or '(no message)'}"[:200]
    return False, "every cell ran: the mistake went unnoticed"


def main(argv=None):
    names = (argv if argv is not None else sys.argv[1:]) or [m.name for m in MUTATIONS]
    chosen = [m for m in MUTATIONS if m.name in names]
    missed = 0
    for m in chosen:
        caught, what = run(m)
        missed += not caught
        print(f"{'caught' if caught else 'MISSED'}  {m.name:32s} {m.notebook:24s} {what}", flush=True)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
