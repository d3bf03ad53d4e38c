"""The two-stochastic-layer VAE: gradients of both objectives, the loss against an
independent computation, log p(x) against quadrature, save / load."""
import numpy as np
import pytest

import npvae
from npvae.data import load_dataset
from npvae.distributions import LOG_2PI
from npvae.likelihoods import soft_clamp
from npvae.gradcheck import check_gradients
from npvae.models.hierarchical import HierarchicalVAE

LIKELIHOODS = ["bernoulli", "gaussian", "gaussian-learned", "continuous-bernoulli"]


def _model(likelihood="bernoulli", dims=(3, 2), **kw):
    return HierarchicalVAE(6, dims, hidden=((5,), (4,)), activation="tanh", likelihood=likelihood,
                           dtype=np.float64, seed=1, **kw)


def _x(likelihood, B=4, D=6, seed=0):
    rng = np.random.default_rng(seed)
    if likelihood in ("bernoulli", "continuous-bernoulli"):
        return rng.uniform(size=(B, D))
    return rng.standard_normal((B, D))


@pytest.mark.parametrize("likelihood", LIKELIHOODS)
@pytest.mark.parametrize("objective, beta", [("elbo", 1.0), ("elbo", 0.6), ("iwae", 1.0)])
@pytest.mark.parametrize("L", [1, 3])
def test_gradient_of_every_parameter(likelihood, objective, beta, L):
    model = _model(likelihood)
    x = _x(likelihood)
    eps = np.random.default_rng(L).standard_normal((L, 4, 5))
    _, grads = model.loss_and_grads(x, eps=eps, beta=beta, objective=objective)
    report = check_gradients(lambda: model._loss(x, eps, beta, objective).loss, model.params, grads)
    assert report.passed, str(report)


def _log_w_by_hand(model, x, eps):
    """log w written out from the parameters, for one hidden layer per MLP and tanh."""
    p = model.params
    m1, m2 = model.latent_dims
    mlp = lambda name, v: np.tanh(v @ p[f"{name}.0.W"] + p[f"{name}.0.b"]) @ p[f"{name}.out.W"] + p[f"{name}.out.b"]
    mu1, lv1 = np.split(mlp("encoder1", x), 2, axis=-1)
    z1 = mu1 + np.exp(lv1 / 2) * eps[..., :m1]
    mu2, lv2 = np.split(mlp("encoder2", z1), 2, axis=-1)
    z2 = mu2 + np.exp(lv2 / 2) * eps[..., m1:]
    mean1, raw1 = np.split(mlp("decoder2", z2), 2, axis=-1)
    logits = mlp("decoder1", z1)
    normal = lambda v, m, lv: np.sum(-0.5 * (v - m) ** 2 / np.exp(lv) - 0.5 * lv - 0.5 * LOG_2PI, axis=-1)
    log_px = np.sum(x * np.log(1 / (1 + np.exp(-logits))) + (1 - x) * np.log(1 / (1 + np.exp(logits))), axis=-1)
    return (log_px + normal(z1, mean1, soft_clamp(raw1)) + normal(z2, 0, 0)
            - normal(z1, mu1, lv1) - normal(z2, mu2, lv2))


def test_log_weights_match_an_independent_computation():
    model = _model()
    x = _x("bernoulli")
    eps = np.random.default_rng(2).standard_normal((5, 4, 5))
    log_w = model.log_weights(x, eps)
    np.testing.assert_allclose(log_w, _log_w_by_hand(model, x, eps), rtol=1e-12)
    assert model._loss(x, eps).loss == pytest.approx(-log_w.mean(), rel=1e-12)
    iwae = -np.mean(np.log(np.mean(np.exp(log_w), axis=0)))
    assert model._loss(x, eps, objective="iwae").loss == pytest.approx(iwae, rel=1e-12)
    terms = model.elbo(x, eps=eps)
    np.testing.assert_allclose(terms.elbo, log_w.mean(axis=0), rtol=1e-12)


def test_iwae_bound_is_tighter_and_log_likelihood_matches_quadrature():
    # m1 = m2 = 1: log p(x) = log of a double integral over (z1, z2), done on a grid.
    data = load_dataset("digits", seed=0)
    model = HierarchicalVAE(64, (1, 1), hidden=((16,), (4,)), activation="tanh",
                            dtype=np.float64, seed=0)
    npvae.fit(model, data.x_train, epochs=5, batch_size=64, seed=0)
    x = data.x_test[:4].astype(np.float64)
    g = np.linspace(-7, 7, 561)
    dz = g[1] - g[0]
    z1, z2 = (a.reshape(-1, 1) for a in np.meshgrid(g, g, indexing="ij"))
    prior1 = model.decoder2.forward(z2)
    log_joint = (model.likelihood.log_prob(x[:, None], model.decoder1.forward(z1)[None])
                 + model.prior1.log_prob(z1, prior1) - 0.5 * (z2[:, 0] ** 2 + LOG_2PI))
    top = log_joint.max(axis=1, keepdims=True)
    exact = top[:, 0] + np.log(np.exp(log_joint - top).sum(axis=1)) + 2 * np.log(dz)

    runs = np.stack([npvae.log_likelihood(model, x, k=3000, seed=s) for s in range(4)])
    est, se = runs.mean(axis=0), runs.std(axis=0, ddof=1) / 2
    elbo = model.elbo(x, n_samples=20000).elbo
    assert np.all(elbo < est)
    assert np.all(est <= exact + 4 * se + 1e-6)
    assert np.all(exact - est < 0.1 * (exact - elbo) + 4 * se)


def test_training_with_either_objective_lowers_the_loss():
    data = load_dataset("digits", seed=0)
    for objective in ("elbo", "iwae"):
        model = HierarchicalVAE(64, (8, 4), hidden=((32,), (16,)), seed=0)
        before = -npvae.log_likelihood(model, data.x_test, k=20).mean()
        npvae.fit(model, data.x_train, epochs=8, batch_size=64, n_samples=5, seed=0,
                  objective=objective)
        after = -npvae.log_likelihood(model, data.x_test, k=20).mean()
        assert after < before - 5, (objective, before, after)


def test_save_load_round_trip(tmp_path):
    model = _model("gaussian-learned")
    npvae.save(model, tmp_path / "h.npz")
    again = npvae.load(tmp_path / "h.npz")
    assert isinstance(again, HierarchicalVAE) and again.get_config() == model.get_config()
    x = _x("gaussian")
    eps = np.random.default_rng(0).standard_normal((2, 4, 5))
    np.testing.assert_array_equal(again.log_weights(x, eps), model.log_weights(x, eps))


def test_inference_shapes_and_errors():
    model = _model()
    x = _x("bernoulli")
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (4, 3)
    assert model.sample(5).shape == (5, 6) and model.reconstruct(x).shape == (4, 6)
    with pytest.raises(ValueError, match=r"eps has shape \(1, 4, 3\); expected \(L, B, noise_dim\) = \(L, 4, 5\)"):
        model.loss_and_grads(x, eps=np.zeros((1, 4, 3)))
    with pytest.raises(ValueError, match="IWAE objective is defined for beta = 1"):
        model.loss_and_grads(x, beta=0.5, objective="iwae")
    with pytest.raises(ValueError, match="objective must be one of"):
        model.loss_and_grads(x, objective="vimco")
