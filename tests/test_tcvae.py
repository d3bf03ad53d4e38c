"""beta-TCVAE: the minibatch estimator of q(z), the three terms, their hand-written gradient.

The estimator is checked where the answer is known: it is unbiased for q(z) (every batch
enumerated), exact at B = N, zero total correlation when q(z) factorises, and close to the
closed-form decomposition of a linear-Gaussian encoder, where q(z) is a Gaussian.
"""
import itertools

import numpy as np
import pytest

import npvae
from npvae.distributions import gaussian_log_density
from npvae.fast import backend
from npvae.fast.tcvae import tc_terms, work_shape
from npvae.tcvae import (TCWeights, decompose, minibatch_terms_np, pair_log_densities,
                         stratified_log_weights)


def mixture_log_density(z, mu, logvar):
    """log (1/N) sum_n N(z | mu_n, diag(exp(logvar_n))) of each row of z, (R,): q(z) exactly."""
    each = gaussian_log_density(z[:, None, :], mu[None], logvar[None])  # (R, N)
    top = each.max(axis=1)
    return top + np.log(np.mean(np.exp(each - top[:, None]), axis=1))


# ------------------------------------------------------------------ the estimator of q(z)


def test_the_stratified_weights_sum_to_one_and_are_exact_on_the_whole_data():
    log_w = stratified_log_weights(5, 40)
    assert np.allclose(np.exp(log_w).sum(axis=1), 1.0)
    assert np.allclose(np.diag(log_w), -np.log(40))
    assert np.allclose(stratified_log_weights(7, 7), -np.log(7))
    with pytest.raises(ValueError, match="at least 2 examples per batch, got 1"):
        stratified_log_weights(1, 10)
    with pytest.raises(ValueError, match="a batch of 8 examples cannot come from 5"):
        stratified_log_weights(8, 5)


def test_the_estimate_of_q_z_is_unbiased_over_every_batch_holding_the_example():
    """Average q_hat(z) over all C(N-1, B-1) batches that hold example i: it is q(z) exactly."""
    rng = np.random.default_rng(0)
    N, B, m = 7, 3, 2
    mu, logvar = rng.normal(size=(N, m)), rng.normal(scale=0.3, size=(N, m))
    i = 2
    z = mu[i] + np.exp(0.5 * logvar[i]) * rng.normal(size=m)
    log_w = stratified_log_weights(B, N)
    estimates = []
    for others in itertools.combinations([n for n in range(N) if n != i], B - 1):
        batch = [i, *others]  # row 0 of the batch is example i
        log_q = gaussian_log_density(z, mu[batch], logvar[batch])  # (B,)
        estimates.append(np.sum(np.exp(log_w[0] + log_q)))
    exact = np.exp(mixture_log_density(z[None], mu, logvar))[0]
    assert np.mean(estimates) == pytest.approx(exact, rel=1e-12)
    # the estimate varies from batch to batch, so its log is biased low (Jensen)
    assert np.mean(np.log(estimates)) < np.log(exact) - 1e-3


def test_on_the_whole_data_the_terms_are_the_exact_mixture_terms():
    rng = np.random.default_rng(1)
    N, m, L = 9, 3, 2
    mu, logvar = rng.normal(size=(N, m)), rng.normal(scale=0.5, size=(N, m))
    eps = rng.normal(size=(L, N, m))
    z = (mu + np.exp(0.5 * logvar) * eps).reshape(L * N, m)
    d = decompose(z, mu, logvar, stratified_log_weights(N, N))
    mus, lvs = np.tile(mu, (L, 1)), np.tile(logvar, (L, 1))
    log_qz = mixture_log_density(z, mu, logvar)
    log_qzj = np.stack([mixture_log_density(z[:, [j]], mu[:, [j]], logvar[:, [j]]) for j in range(m)], 1)
    log_pz = gaussian_log_density(z, 0.0, 0.0)
    np.testing.assert_allclose(d.mi, gaussian_log_density(z, mus, lvs) - log_qz, rtol=0, atol=1e-12)
    np.testing.assert_allclose(d.tc, log_qz - log_qzj.sum(axis=1), rtol=0, atol=1e-12)
    np.testing.assert_allclose(d.dwkl, log_qzj.sum(axis=1) - log_pz, rtol=0, atol=1e-12)


def test_a_factorised_aggregate_posterior_has_no_total_correlation():
    """Means on a full product grid, each dimension's variance set by its own coordinate:
    q(z) = prod_j q(z_j) exactly, so every code's TC term is 0; one shared mean breaks it."""
    grid = np.array(list(itertools.product([-1.5, 0.0, 2.0], [-1.0, 1.0], [0.0, 0.5, 1.0, 3.0])))
    mu = grid
    logvar = np.stack([0.2 * grid[:, 0], -0.3 * grid[:, 1], 0.1 * grid[:, 2] - 1], axis=1)
    N = len(grid)
    z = mu + np.exp(0.5 * logvar) * np.random.default_rng(2).normal(size=mu.shape)
    d = decompose(z, mu, logvar, stratified_log_weights(N, N))
    np.testing.assert_allclose(d.tc, 0.0, atol=1e-12)
    correlated = np.column_stack([grid[:, 0], grid[:, 0], grid[:, 2]])  # z_0 and z_1 move together
    z = correlated + np.exp(0.5 * logvar) * np.random.default_rng(2).normal(size=mu.shape)
    assert decompose(z, correlated, logvar, stratified_log_weights(N, N)).tc.mean() > 0.3


def linear_gaussian_terms(A, s2):
    """The exact decomposition for x ~ N(0, I), q(z|x) = N(A x, diag(s2)): q(z) = N(0, S),
    S = A A^T + diag(s2), so MI = 0.5 (log det S - sum log s2), TC = 0.5 (sum log S_jj -
    log det S), DWKL = sum_j 0.5 (S_jj - 1 - log S_jj)."""
    S = A @ A.T + np.diag(s2)
    logdet = np.linalg.slogdet(S)[1]
    d = np.diag(S)
    return 0.5 * (logdet - np.sum(np.log(s2))), 0.5 * (np.sum(np.log(d)) - logdet), \
        0.5 * np.sum(d - 1 - np.log(d))


def test_the_estimates_match_the_closed_form_decomposition_of_a_linear_gaussian_encoder():
    """N examples x_n ~ N(0, I) give N posteriors; their mixture stands in for q(z) = N(0, S).
    On the whole data the estimate is within Monte Carlo error of the closed form; in
    batches of 256 of the 4,000 rows the stratified estimator is still within 0.06 nats."""
    rng = np.random.default_rng(3)
    A = np.array([[0.9, 0.0], [0.7, 0.5]])
    s2 = np.array([0.3, 0.2])
    mi, tc, dw = linear_gaussian_terms(A, s2)
    assert tc > 0.2  # a dependent code: the check has something to find
    N = 4000
    mu = rng.normal(size=(N, 2)) @ A.T
    logvar = np.tile(np.log(s2), (N, 1))
    z = mu + np.sqrt(s2) * rng.normal(size=(N, 2))
    whole = decompose(z[:2000], mu, logvar, stratified_log_weights(N, N)[:2000])
    for estimate, exact in zip((whole.mi, whole.tc, whole.dwkl), (mi, tc, dw)):
        assert estimate.mean() == pytest.approx(exact, abs=0.05)
    B = 256
    terms = []
    for start in range(0, N - B + 1, B):  # the rows are in random order: batches are random
        rows = slice(start, start + B)
        terms.append(decompose(z[rows], mu[rows], logvar[rows], stratified_log_weights(B, N)))
    for name, exact in zip(("mi", "tc", "dwkl"), (mi, tc, dw)):
        assert np.mean([getattr(t, name).mean() for t in terms]) == pytest.approx(exact, abs=0.06)
    # weighing every batch member 1/(N B) is biased by far more
    mws = np.full((B, B), -np.log(N * B))
    assert np.mean([decompose(z[s:s + B], mu[s:s + B], logvar[s:s + B], mws).mi.mean()
                    for s in range(0, N - B + 1, B)]) > mi + 1.0


# ------------------------------------------------------------------ the gradient


@pytest.fixture(params=["numpy", "numba"])
def each_backend(request):
    backend.set_backend(request.param)
    return request.param


@pytest.mark.parametrize("L,weights,beta", [(1, TCWeights(1.0, 1.0, 40), 6.0),
                                            (3, TCWeights(0.4, 2.5, 40), 3.0),
                                            (2, TCWeights(1.0, 1.0, None), 1.0)])
def test_every_parameter_matches_central_differences(each_backend, L, weights, beta):
    model = npvae.VAE(10, latent_dim=3, hidden=(6,), activation="tanh", dtype=np.float64, seed=4)
    rng = np.random.default_rng(5)
    x = (rng.random((7, 10)) > 0.5).astype(np.float64)
    eps = rng.standard_normal((L, 7, 3))
    _, grads = model.loss_and_grads(x, eps, beta=beta, objective="tcvae", alpha=weights.alpha,
                                    gamma=weights.gamma, dataset_size=weights.dataset_size)
    xc = model.check_input(x)
    report = npvae.check_gradients(lambda: model._loss(xc, eps, beta, "tcvae", 0.0, weights).loss,
                                   model.params, grads)
    assert report.max_rel_error < 1e-6, report


def test_the_conditional_model_trains_the_same_objective(each_backend):
    model = npvae.ConditionalVAE(8, 3, latent_dim=2, hidden=(5,), dtype=np.float64, seed=6)
    rng = np.random.default_rng(7)
    x = np.hstack([(rng.random((6, 8)) > 0.5), np.eye(3)[rng.integers(0, 3, 6)]]).astype(float)
    eps = rng.standard_normal((1, 6, 2))
    weights = TCWeights(0.5, 1.5, 30)
    _, grads = model.loss_and_grads(x, eps, beta=5.0, objective="tcvae", alpha=0.5, gamma=1.5,
                                    dataset_size=30)
    xc = model.check_input(x)
    report = npvae.check_gradients(lambda: model._loss(xc, eps, 5.0, "tcvae", 0.0, weights).loss,
                                   model.params, grads)
    assert report.max_rel_error < 1e-6, report


def test_the_kernel_is_the_twin(each_backend):
    rng = np.random.default_rng(8)
    for dtype in (np.float64, np.float32):
        R, B, m = 10, 5, 3
        z = rng.normal(size=(R, m)).astype(dtype)
        h = np.hstack([rng.normal(size=(B, m)), rng.normal(scale=0.5, size=(B, m))]).astype(dtype)
        log_w = stratified_log_weights(B, 50)
        dz0, dh0 = np.empty((R, m), dtype), np.empty((B, 2 * m), dtype)
        sums0 = minibatch_terms_np(z, h, log_w, 0.3, 4.0, 1.7, dz0, dh0)
        dz1, dh1 = np.full((R, m), np.nan, dtype), np.full((B, 2 * m), np.nan, dtype)
        sums1 = tc_terms(z, h, log_w, 0.3, 4.0, 1.7, dz1, dh1, np.full(work_shape(B, m), np.nan))
        tol = 1e-12 if dtype == np.float64 else 1e-5
        np.testing.assert_allclose(sums1, sums0, rtol=tol)
        np.testing.assert_allclose(dz1, dz0, rtol=tol, atol=tol)
        np.testing.assert_allclose(dh1, dh0, rtol=tol, atol=tol)


def test_unit_weights_give_the_elbo_with_a_sampled_kl():
    """alpha = beta = gamma = 1: the three terms add up to log q(z|x) - log p(z), so the loss is
    -mean log w, the one-sample ELBO the model's log_weights computes on its own path; equal
    weights b give rec + b times the sampled KL."""
    model = npvae.VAE(10, latent_dim=3, hidden=(6,), dtype=np.float64, seed=9)
    rng = np.random.default_rng(10)
    x = (rng.random((6, 10)) > 0.5).astype(np.float64)
    eps = rng.standard_normal((2, 6, 3))
    loss, _ = model.loss_and_grads(x, eps, objective="tcvae", dataset_size=100)
    log_w = model.log_weights(model.check_input(x), eps)
    assert loss == pytest.approx(-log_w.mean(), rel=1e-12)
    rec = -model._log_px_and_posterior(model.check_input(x), eps)[0].mean()
    loss3, _ = model.loss_and_grads(x, eps, beta=3.0, objective="tcvae", alpha=3.0, gamma=3.0,
                                    dataset_size=100)
    assert loss3 == pytest.approx(rec + 3 * (-log_w.mean() - rec), rel=1e-12)


def test_pair_densities_are_the_gaussian_log_density():
    rng = np.random.default_rng(11)
    z, mu, lv = rng.normal(size=(4, 3)), rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    lp = pair_log_densities(z, mu, lv)
    np.testing.assert_allclose(lp.sum(axis=-1), gaussian_log_density(z[:, None], mu[None], lv[None]))


# ------------------------------------------------------------------ training with it


def test_fit_trains_the_tcvae_objective_and_refuses_a_batch_of_one():
    ds = npvae.load_dataset("digits")
    x = ds.x_train[:300]
    model = npvae.VAE(64, latent_dim=4, hidden=(32,), likelihood="gaussian", seed=0)
    history = npvae.fit(model, x, ds.x_test[:200], epochs=4, batch_size=50, objective="tcvae",
                        beta=4.0, optimizer=npvae.Adam(lr=3e-3))
    assert history.val_loss[-1] < history.val_loss[0]
    with pytest.raises(ValueError, match="301 rows in batches of 50 leave a batch of 1"):
        npvae.fit(model, ds.x_train[:301], epochs=1, batch_size=50, objective="tcvae")
    with pytest.raises(ValueError, match="use objective 'elbo' or 'iwae'"):
        npvae.fit(npvae.HierarchicalVAE(64, latent_dims=(3, 2), hidden=((8,), (4,))), x,
                  epochs=1, objective="tcvae")


def test_the_kernel_refuses_a_work_array_too_small():
    z, h = np.zeros((4, 3)), np.zeros((2, 6))
    dz, dh = np.empty((4, 3)), np.empty((2, 6))
    with pytest.raises(ValueError, match="work is smaller"):
        tc_terms(z, h, stratified_log_weights(2, 10), 1.0, 2.0, 1.0, dz, dh, np.empty((3, 7)))
