"""Evaluation against numerical quadrature: for a 1-D or 2-D latent, log p(x) is an integral
we can compute on a grid, so the importance-weighted estimate has a ground truth."""
import numpy as np
import pytest

import npvae
from npvae.distributions import LOG_2PI


def _log_px_by_quadrature(model, x, half_width=8.0, n=2001):
    """log p(x) = log int p(x|z) N(z; 0, I) dz on a uniform grid (trapezoid = midpoint here,
    the integrand vanishes at the ends), for latent_dim 1 or 2."""
    g = np.linspace(-half_width, half_width, n)
    dz = g[1] - g[0]
    if model.latent_dim == 1:
        z = g[:, None]
    else:
        z = np.stack(np.meshgrid(g, g, indexing="ij"), axis=-1).reshape(-1, 2)
    log_prior = -0.5 * np.sum(z * z + LOG_2PI, axis=1)  # (G,)
    out = model.decoder_output(z)  # (G, P)
    log_joint = model.likelihood.log_prob(x[:, None, :], out[None]) + log_prior  # (B, G)
    top = log_joint.max(axis=1, keepdims=True)
    return (top[:, 0] + np.log(np.exp(log_joint - top).sum(axis=1))
            + model.latent_dim * np.log(dz))


@pytest.fixture(scope="module", params=[1, 2])
def trained(request):
    """A small float64 VAE trained briefly on digits, so q(z|x) is informative but not exact."""
    from npvae.data import load_dataset

    data = load_dataset("digits", seed=0)
    m = request.param
    model = npvae.VAE(64, m, hidden=(32,), activation="tanh", dtype=np.float64, seed=0)
    npvae.fit(model, data.x_train, epochs=15, batch_size=64, seed=0)
    return model, data.x_test[:6].astype(np.float64)


def test_grid_is_fine_enough(trained):
    model, x = trained
    coarse = _log_px_by_quadrature(model, x, n=1001 if model.latent_dim == 1 else 401)
    fine = _log_px_by_quadrature(model, x, n=4001 if model.latent_dim == 1 else 801)
    np.testing.assert_allclose(coarse, fine, atol=1e-6)


def test_importance_weighted_estimate_approaches_log_px(trained):
    model, x = trained
    n = 4001 if model.latent_dim == 1 else 801
    exact = _log_px_by_quadrature(model, x, n=n)
    groups = np.stack([model.elbo(x, n_samples=1000).elbo for _ in range(40)])  # (40, B)
    elbo = groups.mean(axis=0)
    elbo_se = groups.std(axis=0, ddof=1) / np.sqrt(40)
    k1 = npvae.log_likelihood(model, x, k=1, seed=1)
    estimates = np.stack([npvae.log_likelihood(model, x, k=5000, seed=s) for s in range(5)])
    est, se = estimates.mean(axis=0), estimates.std(axis=0, ddof=1) / np.sqrt(5)
    # ELBO <= log p_k <= log p(x), each side within Monte Carlo error.
    assert np.all(elbo <= est + 4 * np.hypot(se, elbo_se))
    assert np.all(est <= exact + 4 * se + 1e-6)
    # The posterior approximation is not exact: the ELBO sits measurably below log p(x) ...
    gap = exact - elbo
    assert np.all(gap > 4 * elbo_se), (gap, elbo_se)
    # ... and k = 5000 importance samples close at least 95% of that gap.
    assert np.all(exact - est < 0.05 * gap + 4 * se), (exact - est, gap, se)
    assert np.all(np.isfinite(k1))


def test_log_likelihood_chunking_does_not_change_the_result():
    model = npvae.VAE(10, 2, hidden=(6,), dtype=np.float64, seed=0)
    x = np.random.default_rng(0).uniform(size=(7, 10))
    whole = npvae.log_likelihood(model, x, k=300, seed=4)
    # Chunks of 200 // (7 * 10) = 2 samples draw the same noise stream in pieces, so only the
    # order of the log-sum-exp changes.
    chunked = npvae.log_likelihood(model, x, k=300, seed=4, max_chunk_elements=200)
    np.testing.assert_allclose(chunked, whole, rtol=1e-13)
    np.testing.assert_array_equal(whole, npvae.log_likelihood(model, x, k=300, seed=4))
    with pytest.raises(ValueError, match="k must be >= 1"):
        npvae.log_likelihood(model, x, k=0)


def test_kl_per_dimension_and_active_units():
    model = npvae.VAE(10, 3, hidden=(6,), dtype=np.float64, seed=0)
    x = np.random.default_rng(1).uniform(size=(50, 10))
    per_dim = npvae.kl_per_dimension(model, x, batch_size=7)
    assert per_dim.shape == (3,) and np.all(per_dim >= 0)
    assert per_dim.sum() == pytest.approx(model.elbo(x).kl.mean(), rel=1e-12)
    # Make dimension 1 ignore the input: its posterior mean is constant, so it is inactive.
    model.params["encoder.out.W"][:, 1] = 0.0
    n_active, activity = npvae.active_units(model, x, batch_size=7)
    assert activity[1] == pytest.approx(0.0, abs=1e-20)
    mu, _ = model.encode(x)
    np.testing.assert_allclose(activity, mu.var(axis=0))
    assert n_active == int(np.sum(mu.var(axis=0) > 0.01))
