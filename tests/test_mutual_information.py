"""npvae.mutual_information against cases with a known answer.

I_q(x; z) = (1/N) sum_n E_{q(z|x_n)}[log q(z|x_n) - log q(z)], q(z) = (1/N) sum_m q(z|x_m).
Each test names the wrong implementations it catches.
"""
import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import chi2, norm

import npvae


class FixedPosteriors:
    """A stand-in model: row n of x holds the number n, and q(z | x_n) = N(mu[n], diag exp(logvar[n]))."""

    def __init__(self, mu, logvar):
        self.mu, self.logvar = np.asarray(mu, dtype=np.float64), np.asarray(logvar, dtype=np.float64)
        self.latent_dim = self.mu.shape[1]

    def rows(self):
        return np.arange(len(self.mu), dtype=np.float64)[:, None]  # (N, 1)

    def check_input(self, x, check_support=True):
        return np.asarray(x, dtype=np.float64)

    def encode(self, x):
        idx = x[:, 0].astype(int)
        return self.mu[idx], self.logvar[idx]


def test_identical_posteriors_carry_no_information():
    """q(z|x_n) the same for every n: q(z) = q(z|x_n), so every term is 0 (exactly, up to rounding).

    Fails for an implementation that scores z against the prior p(z) instead of q(z) (it returns
    the average KL to the prior), one that sums the mixture instead of averaging it (log-sum-exp
    without the -log N: the result is -log N), and one that divides the mixture by N - 1
    (log(N / (N - 1)) = 0.034 nats at N = 30)."""
    rng = np.random.default_rng(0)
    mu, logvar = rng.normal(size=(1, 3)), rng.normal(size=(1, 3))
    fake = FixedPosteriors(np.repeat(mu, 30, axis=0), np.repeat(logvar, 30, axis=0))
    mi, se = npvae.mutual_information(fake, fake.rows(), n_samples=5, seed=1)
    assert abs(mi) < 1e-12 and se < 1e-12  # rounding of a log-sum-exp of 30 equal terms: ~1e-15

    # the same with a real VAE whose encoder ignores its input (last layer's weights zero)
    model = npvae.VAE(10, 4, hidden=(8,), dtype=np.float64, seed=0)
    model.params["encoder.out.W"][...] = 0.0
    model.params["encoder.out.b"][...] = rng.normal(size=8)
    x = rng.uniform(size=(25, 10))
    mi, se = npvae.mutual_information(model, x, n_samples=3, batch_size=7)
    assert abs(mi) < 1e-12


def test_separated_narrow_posteriors_give_log_n():
    """N posteriors 10 apart with sigma = 0.01: each code is 1000 sigma from every other
    component, whose density is then exp(-5e5) relative (0 in float64), so I = log N to rounding.

    Fails for: leaving the own component out of q(z) (log q(z) ~ -5e5: I huge), normalising
    the mixture by N - 1 (gives log(N - 1): 0.02 off at N = 50), summing instead of averaging
    (gives 0), and scoring against the prior. (A wrong spread of the codes or of the densities
    changes nothing here: that is the two-point test's job.)"""
    N, J = 50, 3
    rng = np.random.default_rng(1)
    mu = np.zeros((N, J))
    mu[:, 0] = 10.0 * np.arange(N)
    mu[:, 1:] = rng.normal(size=(N, J - 1))  # the other dimensions need not be separated
    fake = FixedPosteriors(mu, np.full((N, J), 2 * np.log(0.01)))
    mi, _ = npvae.mutual_information(fake, fake.rows(), n_samples=4, batch_size=13)
    assert abs(mi - np.log(N)) < 1e-12


def _two_point_exact(mu, sd, half_width=12.0, n=20001):
    """I for q = 0.5 N(mu[0], sd[0]^2) + 0.5 N(mu[1], sd[1]^2) in 1-D, by the trapezoid rule."""
    z = np.linspace(min(mu) - half_width * max(sd), max(mu) + half_width * max(sd), n)
    log_q = np.stack([norm.logpdf(z, m, s) for m, s in zip(mu, sd)])  # (2, n)
    log_mix = logsumexp(log_q, axis=0) - np.log(2)
    integrand = 0.5 * np.sum(np.exp(log_q) * (log_q - log_mix), axis=0)
    return np.trapezoid(integrand, z)


def test_two_point_case_matches_quadrature():
    """Two posteriors: dimension 0 N(-0.6, 0.8^2) and N(0.6, 1.3^2), dimension 1 N(0.3, 0.5^2)
    for both (it carries nothing). I is a 1-D integral, computed by quadrature; the estimate
    must match it within 4 standard errors, the standard error taken from 16 independent
    seeds (not from the function), and the function's own standard error must agree with
    that spread within the 1e-4 two-sided band of a chi-square with 15 degrees of freedom.

    Fails for: sampling z with the variance in place of the standard deviation
    (z = mu + exp(logvar) * eps), averaging instead of summing log-densities over the J
    dimensions (halves the answer), any error in the mixture weights (N - 1, a sum), and a
    standard error off by more than the band (e.g. one that divides by N, not by N * n_samples)."""
    mu0, sd0 = np.array([-0.6, 0.6]), np.array([0.8, 1.3])
    exact = _two_point_exact(mu0, sd0)
    # quadrature error: halving the grid spacing changes the value by less than 1e-12
    assert abs(exact - _two_point_exact(mu0, sd0, n=40001)) < 1e-12
    assert abs(exact - _two_point_exact(mu0, sd0, half_width=16.0, n=40001)) < 1e-12
    mu = np.stack([mu0, [0.3, 0.3]], axis=1)  # (2, J=2)
    logvar = np.stack([2 * np.log(sd0), 2 * np.log([0.5, 0.5])], axis=1)
    fake = FixedPosteriors(mu, logvar)
    runs = np.array([npvae.mutual_information(fake, fake.rows(), n_samples=2000, batch_size=1000, seed=s)
                     for s in range(16)])  # (16, 2): estimate, standard error
    estimate, spread = runs[:, 0].mean(), runs[:, 0].std(ddof=1)
    print(f"quadrature {exact:.5f}, Monte Carlo {estimate:.5f} +- {spread / 4:.5f}")
    assert abs(estimate - exact) < 4 * spread / 4  # 4 standard errors of the mean of 16
    ratio = np.median(runs[:, 1]) / spread
    lo, hi = np.sqrt(chi2.ppf([1e-4, 1 - 1e-4], 15) / 15)  # spread / true sd lies here w.p. 1 - 2e-4
    assert 1 / hi < ratio < 1 / lo, ratio


def test_rate_is_information_plus_marginal_kl():
    """E_n KL(q(z|x_n) || p(z)) = I_q + KL(q(z) || p(z)), the second term estimated here with
    scipy's densities and codes drawn from q(z) by an independent sampler (an index, then a code),
    the first by the closed-form KL; agreement within 4 combined standard errors. Also I_q <= log N
    and I_q <= the rate.

    The tolerance, 4 combined standard errors, is 0.045 nats: this fails for an estimate that
    leaves the own component out of q(z), samples with the variance in place of the standard
    deviation, averages the log-densities over J, scores against the prior or sums the mixture;
    not for the N - 1 normalisation (0.025 nats here; the other tests catch it)."""
    N, J = 40, 2
    rng = np.random.default_rng(2)
    mu, logvar = rng.normal(size=(N, J)), rng.normal(-1.0, 0.5, size=(N, J))
    fake = FixedPosteriors(mu, logvar)
    mi, mi_se = npvae.mutual_information(fake, fake.rows(), n_samples=200, seed=3)
    rate = np.mean(np.sum(0.5 * (mu ** 2 + np.exp(logvar) - 1 - logvar), axis=1))  # closed form

    M = 20000  # codes from the aggregate posterior
    idx = rng.integers(N, size=M)
    z = mu[idx] + np.exp(0.5 * logvar[idx]) * rng.standard_normal((M, J))
    log_comp = norm.logpdf(z[:, None, :], mu, np.exp(0.5 * logvar)).sum(axis=-1)  # (M, N)
    log_agg = logsumexp(log_comp, axis=1) - np.log(N)
    marg = log_agg - norm.logpdf(z).sum(axis=-1)  # log q(z) - log p(z)
    marg_kl, marg_se = marg.mean(), marg.std(ddof=1) / np.sqrt(M)
    print(f"rate {rate:.4f} = I {mi:.4f} +- {mi_se:.4f} + KL(q(z)||p(z)) {marg_kl:.4f} +- {marg_se:.4f}")
    assert abs(mi + marg_kl - rate) < 4 * np.hypot(mi_se, marg_se)
    assert 0 < mi < min(np.log(N), rate)


def test_bounded_by_log_n_and_blocks_do_not_change_the_result():
    """On a real float64 VAE: every block size gives the same number (the same noise, only the
    blocking differs), and the estimate is below log N but well above half of it.

    Fails for an off-by-one in the blocks (the last code never scored: a different number for
    batch_size 7), and for any estimator whose terms are not capped by log N."""
    rng = np.random.default_rng(4)
    x = rng.uniform(size=(31, 12))
    model = npvae.VAE(12, 3, hidden=(16,), dtype=np.float64, seed=0)
    model.params["encoder.out.W"][...] *= 20  # spread the posteriors apart: I near log N
    whole = npvae.mutual_information(model, x, n_samples=3, batch_size=1000, seed=5)
    for b in (1, 7, 31, 32):
        np.testing.assert_allclose(npvae.mutual_information(model, x, n_samples=3, batch_size=b, seed=5),
                                   whole, rtol=1e-13)
    assert 0.5 * np.log(31) < whole[0] <= np.log(31)
    with pytest.raises(ValueError, match="n_samples"):
        npvae.mutual_information(model, x, n_samples=0)
