"""Posterior sampling, the analytic KL and the likelihoods, against closed forms and
finite differences -- including what a gradient check cannot see (sample moments)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npvae import distributions as dist
from npvae import likelihoods as lk
from npvae.gradcheck import check_gradients

LIKELIHOODS = ["bernoulli", "gaussian", "gaussian-learned", "continuous-bernoulli"]


def _posterior(seed, B=3, m=4):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((B, m)), rng.uniform(-2, 1.5, (B, m))


def test_kl_is_zero_at_the_prior_and_positive_elsewhere():
    zero = np.zeros((2, 5))
    np.testing.assert_array_equal(dist.gaussian_kl(zero, zero), [0.0, 0.0])
    mu, logvar = _posterior(0)
    assert np.all(dist.gaussian_kl(mu, logvar) > 0)


def test_kl_equals_its_monte_carlo_estimate():
    # KL(q || p) = E_q[log q(z) - log p(z)]; compare within 4 standard errors.
    mu, logvar = _posterior(1, B=3, m=3)
    rng = np.random.default_rng(2)
    eps = rng.standard_normal((200_000, 3, 3))
    z, _ = dist.reparameterize(mu, logvar, eps)
    log_q = dist.gaussian_log_density(z, mu, logvar)
    log_p = dist.gaussian_log_density(z, np.zeros_like(mu), np.zeros_like(logvar))
    diff = log_q - log_p  # (N, B)
    se = diff.std(axis=0) / np.sqrt(diff.shape[0])
    assert np.all(np.abs(diff.mean(axis=0) - dist.gaussian_kl(mu, logvar)) < 4 * se)


def test_kl_gradient_matches_finite_differences():
    mu, logvar = _posterior(3)
    p = {"mu": mu, "logvar": logvar}
    dmu, dlogvar = dist.gaussian_kl_backward(mu, logvar)
    report = check_gradients(lambda: float(np.sum(dist.gaussian_kl(p["mu"], p["logvar"]))),
                             p, {"mu": dmu, "logvar": dlogvar})
    assert report.passed and report.max_rel_error < 1e-8, str(report)


def test_posterior_samples_have_mean_mu_and_variance_exp_logvar():
    # logvar = 1.2 keeps exp(logvar) = 3.3 far from exp(2 logvar) = 11: the bug of using
    # exp(logvar) as the standard deviation would fail this by many standard errors.
    mu = np.array([[0.5, -1.0, 2.0]])
    logvar = np.array([[1.2, -0.7, 0.0]])
    n = 400_000
    z, std = dist.reparameterize(mu, logvar, np.random.default_rng(4).standard_normal((n, 1, 3)))
    np.testing.assert_allclose(std, np.exp(0.5 * logvar))
    var = np.exp(logvar)[0]
    assert np.all(np.abs(z.mean(axis=0)[0] - mu[0]) < 4 * np.sqrt(var / n))
    # The sample variance of a Gaussian has standard error var * sqrt(2 / (n - 1)).
    assert np.all(np.abs(z.var(axis=0, ddof=1)[0] - var) < 4 * var * np.sqrt(2 / (n - 1)))


@pytest.mark.parametrize("L", [1, 3])
def test_reparameterization_gradient(L):
    mu, logvar = _posterior(5)
    rng = np.random.default_rng(6)
    eps = rng.standard_normal((L,) + mu.shape)
    w = rng.standard_normal((L,) + mu.shape)
    p = {"mu": mu, "logvar": logvar}
    _, std = dist.reparameterize(mu, logvar, eps)
    dmu, dlogvar = dist.reparameterize_backward(w, eps, std)
    loss = lambda: float(np.sum(w * dist.reparameterize(p["mu"], p["logvar"], eps)[0]))
    report = check_gradients(loss, p, {"mu": dmu, "logvar": dlogvar})
    assert report.passed, str(report)


def _data_for(name, rng, shape):
    if name in ("bernoulli", "continuous-bernoulli"):
        return rng.uniform(0, 1, shape)
    return rng.standard_normal(shape)


@pytest.mark.parametrize("name", LIKELIHOODS + ["gaussian-0.3"])
@settings(max_examples=6, deadline=None)
@given(L=st.integers(1, 3), B=st.integers(1, 4), D=st.integers(1, 6), seed=st.integers(0, 2**31),
       scale=st.sampled_from([0.5, 3.0]))
def test_likelihood_gradient_matches_finite_differences(name, L, B, D, seed, scale):
    lik = lk.Gaussian(0.3) if name == "gaussian-0.3" else lk.make_likelihood(name)
    rng = np.random.default_rng(seed)
    x = _data_for(lik.name, rng, (B, D))
    out = rng.standard_normal((L, B, lik.n_outputs(D))) * scale
    p = {"out": out}
    logp, dout = lik.log_prob_and_grad(x, out)
    assert logp.shape == (L, B) and dout.shape == out.shape
    np.testing.assert_array_equal(logp, lik.log_prob(x, out))
    report = check_gradients(lambda: float(np.sum(lik.log_prob(x, p["out"]))), p, {"out": dout})
    assert report.passed, str(report)


def test_bernoulli_from_logits_is_exact_and_stable():
    lik = lk.Bernoulli()
    x = np.array([[1.0, 0.0, 0.3]])
    l = np.array([[0.7, -1.3, 2.1]])
    p = 1 / (1 + np.exp(-l))
    direct = np.sum(x * np.log(p) + (1 - x) * np.log(1 - p))
    np.testing.assert_allclose(lik.log_prob(x, l), [direct], rtol=1e-14)
    # Logits far beyond where sigmoid rounds to 0 or 1: the log-probability is still exact.
    x = np.array([[1.0, 0.0, 1.0, 0.0]])
    l = np.array([[1e4, -1e4, -50.0, 50.0]])
    with np.errstate(over="raise", divide="raise", invalid="raise"):  # underflow to 0 is fine
        logp, dl = lik.log_prob_and_grad(x, l)
    np.testing.assert_allclose(logp, [-100.0 - 2 * np.log1p(np.exp(-50.0))], rtol=1e-15)
    np.testing.assert_allclose(dl, [[0.0, 0.0, 1.0, -1.0]], atol=1e-20)


def test_gaussian_includes_the_full_normalising_constant():
    rng = np.random.default_rng(7)
    x, f = rng.standard_normal((2, 5)), rng.standard_normal((2, 5))
    for sigma in (1.0, 0.1, 3.0):
        density = np.exp(-(x - f) ** 2 / (2 * sigma**2)) / np.sqrt(2 * np.pi * sigma**2)
        np.testing.assert_allclose(lk.Gaussian(sigma).log_prob(x, f), np.log(density).sum(-1),
                                   rtol=1e-13)


def test_gaussian_learned_uses_the_clamped_log_variance():
    rng = np.random.default_rng(8)
    x, f, r = rng.standard_normal((3, 2, 4))
    lik = lk.GaussianLearned()
    out = np.concatenate([f, r], axis=-1)
    var = np.exp(lk.soft_clamp(r))
    density = np.exp(-(x - f) ** 2 / (2 * var)) / np.sqrt(2 * np.pi * var)
    np.testing.assert_allclose(lik.log_prob(x, out), np.log(density).sum(-1), rtol=1e-13)
    np.testing.assert_allclose(lik.variance(out), var)
    np.testing.assert_array_equal(lik.mean(out), f)


def test_soft_clamp_bounds_the_learned_variance():
    r = np.array([-1e6, -30.0, -1.0, 0.0, 1.0, 30.0, 1e6])
    with np.errstate(over="raise", divide="raise", invalid="raise"):  # underflow to 0 is fine
        c = lk.soft_clamp(r)
    assert np.all(c >= lk.LOGVAR_MIN) and np.all(c <= lk.LOGVAR_MAX)
    assert c[3] == pytest.approx(0.0, abs=1e-12)
    # Identity in the middle, off by exp(r - hi) + exp(lo - r) to first order.
    mid = r[2:5]
    off = np.exp(mid - lk.LOGVAR_MAX) + np.exp(lk.LOGVAR_MIN - mid)
    assert np.all(np.abs(c[2:5] - mid) <= off)
    # Even with a zero residual and a huge negative raw logvar, the loss stays finite.
    lik = lk.GaussianLearned()
    logp = lik.log_prob(np.zeros((1, 1)), np.array([[0.0, -1e6]]))
    assert np.isfinite(logp).all()
    p = {"r": np.array([-12.0, -9.5, 0.3, 9.5, 12.0])}
    report = check_gradients(lambda: float(np.sum(lk.soft_clamp(p["r"]))), p,
                             {"r": lk.soft_clamp_backward(p["r"])})
    assert report.passed, str(report)


@pytest.mark.parametrize("logit", [0.0, 1e-9, -1e-4, 0.019, 0.021, 0.5, -3.0, 12.0, -60.0])
def test_continuous_bernoulli_is_normalised_and_its_mean_is_right(logit):
    # Integrate p(x) and x p(x) over [0, 1] with composite Simpson's rule (error ~1e-13 here).
    lik = lk.ContinuousBernoulli()
    n = 20001
    x = np.linspace(0, 1, n)[:, None]
    out = np.full_like(x, logit)
    pdf = np.exp(lik.log_prob(x, out))
    w = np.ones(n)
    w[1:-1:2], w[2:-1:2] = 4, 2
    w /= 3 * (n - 1)
    if abs(logit) < 30:
        assert np.sum(w * pdf) == pytest.approx(1.0, abs=1e-9)
        assert np.sum(w * pdf * x[:, 0]) == pytest.approx(float(lik.mean(np.array([logit]))[0]), abs=1e-9)
    else:  # mass piles up within 1/60 of one end: the mean still follows 1 - 1/|l| or 1/|l|
        assert float(lik.mean(np.array([logit]))[0]) == pytest.approx(1 / 60, rel=1e-12)


def test_continuous_bernoulli_normaliser_is_smooth_across_the_series_switch():
    # The series branch (|l| < 2e-2) and the direct branch must agree where they meet: the
    # two points are 2e-12 apart and both functions have slope < 1/6 there, so they may
    # differ by 4e-13; a missing series term (31 l^5 / 15120 = 6.6e-12) would show.
    l = np.array([2e-2 - 1e-12, 2e-2 + 1e-12, -2e-2 - 1e-12, -2e-2 + 1e-12])
    v, g = lk.cb_log_norm(l), lk.cb_log_norm_grad(l)
    assert v[0] == pytest.approx(v[1], abs=1e-12) and g[0] == pytest.approx(g[1], abs=1e-12)
    assert v[2] == pytest.approx(v[3], abs=1e-12) and g[2] == pytest.approx(g[3], abs=1e-12)
    assert lk.cb_log_norm(np.array([0.0]))[0] == pytest.approx(np.log(2.0), abs=1e-15)


@pytest.mark.parametrize("name", ["bernoulli", "continuous-bernoulli"])
def test_values_outside_the_support_are_refused(name):
    lik = lk.make_likelihood(name)
    with pytest.raises(ValueError, match=r"outside the support \[0, 1\]"):
        lik.check_data(np.array([[0.2, 1.5]]))
    lik.check_data(np.array([[0.0, 1.0]]))


def test_make_likelihood_round_trips_configs_and_names_the_choices():
    for lik in (lk.Bernoulli(), lk.Gaussian(0.25), lk.GaussianLearned(), lk.ContinuousBernoulli()):
        again = lk.make_likelihood(lik.config())
        assert type(again) is type(lik) and again.config() == lik.config()
    with pytest.raises(ValueError, match="unknown likelihood 'poisson'"):
        lk.make_likelihood("poisson")
    with pytest.raises(ValueError, match="sigma"):
        lk.Gaussian(0.0)


def test_pairwise_log_density_is_the_broadcast_one():
    from npvae.distributions import gaussian_log_density, pairwise_gaussian_log_density

    rng = np.random.default_rng(11)
    z, mu, logvar = rng.normal(size=(7, 4)), rng.normal(size=(5, 4)), rng.normal(size=(5, 4))
    np.testing.assert_allclose(pairwise_gaussian_log_density(z, mu, logvar),
                               gaussian_log_density(z[:, None, :], mu, logvar), rtol=1e-13)
