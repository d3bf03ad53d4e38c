"""The VAE: whole-model gradient checks, the loss against an independent computation,
parameter layout, inference methods and input errors."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import npvae

LIKELIHOODS = ["bernoulli", "gaussian", "gaussian-learned", "continuous-bernoulli"]


def _data(likelihood, B, D, seed=0):
    rng = np.random.default_rng(seed)
    if likelihood in ("bernoulli", "continuous-bernoulli"):
        return rng.uniform(0, 1, (B, D))
    return rng.standard_normal((B, D))


def _model(likelihood="bernoulli", activation="tanh", dtype=np.float64, **kw):
    kw = {"input_dim": 7, "latent_dim": 3, "hidden": (6, 5), **kw}
    return npvae.VAE(likelihood=likelihood, activation=activation, dtype=dtype, seed=1, **kw)


@pytest.mark.parametrize("likelihood", LIKELIHOODS)
@pytest.mark.parametrize("L", [1, 3])
@pytest.mark.parametrize("beta", [1.0, 0.37, 2.5])
def test_negative_elbo_gradient_every_parameter(likelihood, L, beta):
    model = _model(likelihood)
    x = _data(likelihood, 4, 7)
    report = npvae.check_model_gradients(model, x, n_samples=L, beta=beta, seed=L)
    assert report.passed, str(report)
    assert [r.name for r in report.results] == list(model.params)
    assert sum(r.n_checked for r in report.results) == model.n_params


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "elu", "softplus", "sigmoid", "identity"])
def test_negative_elbo_gradient_every_activation(activation):
    model = _model("gaussian", activation=activation)
    x = _data("gaussian", 5, 7, seed=2)
    eps = np.random.default_rng(3).standard_normal((2, 5, 3))
    if activation in ("relu", "leaky_relu", "elu"):
        # Finite differences (h = 1e-5) must not straddle a kink: check the margin first.
        h = x @ model.params["encoder.0.W"] + model.params["encoder.0.b"]
        assert np.min(np.abs(h)) > 1e-3, "pick another seed: a pre-activation sits on the kink"
    report = npvae.check_model_gradients(model, x, eps=eps, beta=0.8)
    assert report.passed, str(report)


@settings(max_examples=8, deadline=None)
@given(D=st.integers(1, 6), m=st.integers(1, 3), hidden=st.lists(st.integers(1, 5), max_size=2),
       B=st.integers(1, 4), L=st.integers(1, 2), seed=st.integers(0, 2**31),
       likelihood=st.sampled_from(LIKELIHOODS))
def test_gradient_on_drawn_architectures(D, m, hidden, B, L, seed, likelihood):
    model = npvae.VAE(D, m, hidden=hidden, activation="tanh", likelihood=likelihood,
                      dtype=np.float64, seed=seed)
    report = npvae.check_model_gradients(model, _data(likelihood, B, D, seed), n_samples=L, seed=seed)
    assert report.passed, str(report)


def test_random_direction_mode_on_a_mnist_sized_model():
    model = npvae.VAE(784, 20, hidden=(64,), likelihood="bernoulli", dtype=np.float64, seed=0)
    x = _data("bernoulli", 8, 784)
    report = npvae.check_model_gradients(model, x, mode="random", n_directions=2)
    assert report.passed, str(report)


def _independent_loss(model, x, eps, beta):
    """Negative ELBO written out from the parameters for a one-hidden-layer tanh model."""
    p = model.params
    h = np.tanh(x @ p["encoder.0.W"] + p["encoder.0.b"])
    mu, logvar = np.split(h @ p["encoder.out.W"] + p["encoder.out.b"], 2, axis=1)
    z = mu + np.exp(logvar / 2) * eps  # (L, B, m)
    f = np.tanh(z @ p["decoder.0.W"] + p["decoder.0.b"]) @ p["decoder.out.W"] + p["decoder.out.b"]
    sigma = model.likelihood.sigma
    log_px = np.sum(-0.5 * np.log(2 * np.pi * sigma**2) - (x - f) ** 2 / (2 * sigma**2), axis=-1)
    kl = np.sum(-0.5 * (1 + logvar - mu**2 - np.exp(logvar)), axis=-1)
    return -log_px.mean() + beta * kl.mean(), log_px.mean(axis=0), kl


def test_loss_matches_an_independent_computation():
    model = npvae.VAE(5, 2, hidden=(4,), activation="tanh", likelihood=npvae.Gaussian(sigma=0.5),
                      dtype=np.float64, seed=3)
    x = _data("gaussian", 6, 5)
    eps = np.random.default_rng(4).standard_normal((3, 6, 2))
    expected, log_px, kl = _independent_loss(model, x, eps, beta=0.6)
    loss, _ = model.loss_and_grads(x, eps=eps, beta=0.6)
    assert loss == pytest.approx(expected, rel=1e-13)
    terms = model.elbo(x, eps=eps)
    np.testing.assert_allclose(terms.log_px_z, log_px, rtol=1e-13)
    np.testing.assert_allclose(terms.kl, kl, rtol=1e-12)
    np.testing.assert_allclose(terms.elbo, log_px - kl, rtol=1e-13)
    assert model.loss_and_grads(x, eps=eps)[0] == pytest.approx(-terms.elbo.mean(), rel=1e-13)


def test_parameter_names_and_shapes_follow_the_design():
    model = npvae.VAE(784, 20, hidden=(400, 200), likelihood="gaussian-learned")
    shapes = {k: v.shape for k, v in model.params.items()}
    assert shapes == {
        "encoder.0.W": (784, 400), "encoder.0.b": (400,), "encoder.1.W": (400, 200),
        "encoder.1.b": (200,), "encoder.out.W": (200, 40), "encoder.out.b": (40,),
        "decoder.0.W": (20, 200), "decoder.0.b": (200,), "decoder.1.W": (200, 400),
        "decoder.1.b": (400,), "decoder.out.W": (400, 1568), "decoder.out.b": (1568,)}
    assert model.n_params == sum(v.size for v in model.params.values())
    asym = npvae.VAE(10, 2, hidden=(8,), decoder_hidden=(3, 4))
    assert asym.params["decoder.0.W"].shape == (2, 3) and asym.params["decoder.out.W"].shape == (4, 10)


def test_editing_params_in_place_changes_the_model():
    model = _model()
    x = _data("bernoulli", 3, 7)
    before = model.reconstruct(x)
    model.params["decoder.out.b"][...] += 1.0
    assert np.all(model.reconstruct(x) > before)
    assert np.shares_memory(model.params["encoder.0.W"], model.flat_params)


def test_float32_and_float64_come_from_the_same_code():
    m64 = _model("bernoulli")
    m32 = _model("bernoulli", dtype=np.float32)
    x = _data("bernoulli", 5, 7)
    eps = np.random.default_rng(0).standard_normal((2, 5, 3))
    m32.flat_params[...] = m64.flat_params  # same seed already: check it, then compare
    l64, g64 = m64.loss_and_grads(x, eps=eps)
    l32, g32 = m32.loss_and_grads(x.astype(np.float32), eps=eps.astype(np.float32))
    assert l32 == pytest.approx(l64, rel=1e-5)
    for name in g64:
        assert g32[name].dtype == np.float32
        np.testing.assert_allclose(g32[name], g64[name], rtol=1e-3, atol=1e-5)


def test_returned_gradients_are_not_overwritten_by_the_next_call():
    model = _model()
    x = _data("bernoulli", 3, 7)
    _, g1 = model.loss_and_grads(x)
    kept = {k: v.copy() for k, v in g1.items()}
    model.loss_and_grads(_data("bernoulli", 3, 7, seed=9))
    for k in kept:
        np.testing.assert_array_equal(g1[k], kept[k])


def test_same_seed_same_model_and_noise():
    a, b, c = (npvae.VAE(7, 3, hidden=(5,), seed=s) for s in (4, 4, 5))
    np.testing.assert_array_equal(a.flat_params, b.flat_params)
    assert not np.array_equal(a.flat_params, c.flat_params)
    x = _data("bernoulli", 2, 7).astype(np.float32)
    assert a.loss_and_grads(x)[0] == b.loss_and_grads(x)[0]


def test_inference_methods():
    model = _model("bernoulli", dtype=np.float32)
    x = _data("bernoulli", 4, 7)
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (4, 3) and mu.dtype == np.float32
    xr = model.reconstruct(x)
    assert xr.shape == (4, 7) and np.all((xr > 0) & (xr < 1))
    np.testing.assert_allclose(xr, model.decode(mu))
    xs = model.sample(6)
    assert xs.shape == (6, 7) and np.all((xs > 0) & (xs < 1))
    gl = _model("gaussian-learned")
    assert gl.decode(np.zeros((2, 3))).shape == (2, 7)  # the mean half of [mean | logvar]


def test_monte_carlo_loss_without_eps_averages_to_the_fixed_noise_value():
    # With eps drawn internally, the loss is an unbiased estimate of E_eps[loss(eps)].
    model = _model("gaussian")
    x = _data("gaussian", 3, 7)
    eps = np.random.default_rng(0).standard_normal((20000, 3, 3))
    expected = model.loss_and_grads(x, eps=eps)[0]
    draws = [model.loss_and_grads(x, n_samples=50)[0] for _ in range(200)]
    # Both sides are Monte Carlo averages: 200 x 50 draws here, 20000 in `expected`.
    se = np.std(draws) * np.sqrt(1 / len(draws) + 50 / 20000)
    assert abs(np.mean(draws) - expected) < 4 * se


@pytest.mark.parametrize("bad, error, message", [
    (np.zeros((3, 6)), ValueError, r"x has shape \(3, 6\); expected \(batch, input_dim\) = \(B, 7\)"),
    (np.zeros(7), ValueError, r"shape \(7,\).*reshape\(1, -1\)"),
    (np.zeros((0, 7)), ValueError, "empty"),
    (np.full((2, 7), np.nan), ValueError, "14 NaN"),
    (np.array([[np.inf] + [0.5] * 6]), ValueError, "1 inf"),
    (np.zeros((2, 7), dtype=np.uint8), TypeError, "dtype uint8.*floating-point"),
    (np.zeros((2, 7), dtype=np.int64), TypeError, "dtype int64"),
    (np.full((2, 7), 1.5), ValueError, r"outside the support \[0, 1\] of the bernoulli"),
])
def test_bad_inputs_name_the_problem(bad, error, message):
    model = _model()
    with pytest.raises(error, match=message):
        model.loss_and_grads(bad)
    with pytest.raises(error, match=message):
        model.elbo(bad)


def test_bad_noise_and_arguments_name_the_problem():
    model = _model()
    x = _data("bernoulli", 4, 7)
    with pytest.raises(ValueError, match=r"eps has shape \(4, 3\).*eps\[None\]"):
        model.loss_and_grads(x, eps=np.zeros((4, 3)))
    with pytest.raises(ValueError, match="eps contains NaN"):
        model.loss_and_grads(x, eps=np.full((1, 4, 3), np.nan))
    with pytest.raises(ValueError, match="beta"):
        model.loss_and_grads(x, beta=-1)
    with pytest.raises(ValueError, match=r"z has shape \(2, 5\)"):
        model.decode(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="latent_dim must be a positive integer"):
        npvae.VAE(7, 0)
    with pytest.raises(ValueError, match="unknown activation"):
        npvae.VAE(7, 2, activation="gelu")
    with pytest.raises(ValueError, match="dtype must be float32 or float64"):
        npvae.VAE(7, 2, dtype=np.float16)


def test_gaussian_data_may_be_any_real_number():
    model = _model("gaussian")
    loss, _ = model.loss_and_grads(np.full((2, 7), -30.0))
    assert np.isfinite(loss)


@pytest.mark.parametrize("likelihood", LIKELIHOODS)
@pytest.mark.parametrize("L", [1, 4])
def test_iwae_objective_gradient_and_value(likelihood, L):
    model = _model(likelihood)
    x = _data(likelihood, 4, 7)
    eps = np.random.default_rng(L).standard_normal((L, 4, 3))
    loss, grads = model.loss_and_grads(x, eps=eps, objective="iwae")
    log_w = model.log_weights(x, eps)  # (L, B)
    assert loss == pytest.approx(-np.mean(np.log(np.mean(np.exp(log_w), axis=0))), rel=1e-12)
    report = npvae.check_gradients(lambda: model._loss(x, eps, 1.0, "iwae").loss, model.params, grads)
    assert report.passed, str(report)
    # The IWAE bound is never looser than the L-sample ELBO with a sampled KL.
    assert -loss >= log_w.mean() - 1e-12


@pytest.mark.parametrize("free_bits", [0.02, 0.15])
def test_free_bits_objective_gradient(free_bits):
    # The three dimensions' batch KLs are 0.092, 0.262 and 0.075: a floor of 0.02 is below
    # all of them, 0.15 clamps two and leaves one free.
    model = _model("gaussian")
    x = _data("gaussian", 6, 7)
    eps = np.random.default_rng(0).standard_normal((2, 6, 3))
    mu, logvar = model.encode(x)
    per_dim = np.mean(0.5 * (mu**2 + np.exp(logvar) - 1 - logvar), axis=0)
    assert np.all(np.abs(per_dim - free_bits) > 1e-3), per_dim  # away from the kink
    loss, grads = model.loss_and_grads(x, eps=eps, beta=1.5, free_bits=free_bits)
    parts = model._loss(x, eps, 1.5)
    assert loss == pytest.approx(parts.rec + 1.5 * np.maximum(per_dim, free_bits).sum(), rel=1e-12)
    report = npvae.check_gradients(lambda: model._loss(x, eps, 1.5, "elbo", free_bits).loss,
                                   model.params, grads)
    assert report.passed, str(report)


@pytest.mark.parametrize("kind", ["vae", "conditional", "hierarchical"])
def test_a_pickled_model_keeps_its_parameters_in_its_flat_buffer(kind):
    """Unpickled, a model gives the same numbers, its `params` are still views into the
    buffer the optimizer updates (so training it moves what `params` show), and it is
    independent of the original."""
    import pickle

    rng = np.random.default_rng(0)
    if kind == "vae":
        model, x = npvae.VAE(6, latent_dim=2, hidden=(5,), seed=1), rng.random((8, 6))
    elif kind == "conditional":
        model = npvae.ConditionalVAE(6, 3, latent_dim=2, hidden=(5,), seed=1)
        x = np.concatenate([rng.random((8, 6)), np.eye(3)[rng.integers(0, 3, 8)]], axis=1)
    else:
        model = npvae.HierarchicalVAE(6, latent_dims=(2, 2), hidden=((5,), (4,)), seed=1)
        x = rng.random((8, 6))
    x = x.astype(np.float32)
    model.rng.standard_normal(3)  # a Generator that has moved on from its seed
    again = pickle.loads(pickle.dumps(model))
    eps = rng.standard_normal((2, 8, model.noise_dim)).astype(np.float32)
    assert again.get_config() == model.get_config()
    assert again.loss_and_grads(x, eps=eps)[0] == model.loss_and_grads(x, eps=eps)[0]
    assert again.rng.standard_normal() == model.rng.standard_normal()
    assert all(np.shares_memory(v, again.flat_params) for v in again.params.values())
    before = {k: v.copy() for k, v in again.params.items()}
    npvae.fit(again, x, epochs=1, batch_size=8)
    assert any(not np.array_equal(again.params[k], before[k]) for k in before)
    assert all(np.array_equal(model.params[k], before[k]) for k in before)  # the original stays
