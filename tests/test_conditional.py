"""The conditional VAE: gradients, the label plumbing, and class-conditioned samples that
look like their class."""
import numpy as np
import pytest

import npvae
from npvae.data import load_dataset
from npvae.models.conditional import ConditionalVAE, one_hot
from npvae.gradcheck import check_gradients

LIKELIHOODS = ["bernoulli", "gaussian", "gaussian-learned", "continuous-bernoulli"]


def _model(likelihood="bernoulli", **kw):
    return ConditionalVAE(6, 3, latent_dim=2, hidden=(5,), activation="tanh",
                          likelihood=likelihood, dtype=np.float64, seed=2, **kw)


def _xa(model, B=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(B, model.input_dim))
    return model.join(x, rng.integers(0, model.n_classes, B))


@pytest.mark.parametrize("likelihood", LIKELIHOODS)
@pytest.mark.parametrize("objective, beta", [("elbo", 1.0), ("elbo", 1.7), ("iwae", 1.0)])
@pytest.mark.parametrize("L", [1, 3])
def test_gradient_of_every_parameter(likelihood, objective, beta, L):
    model = _model(likelihood)
    xa = _xa(model)
    eps = np.random.default_rng(L).standard_normal((L, 4, 2))
    _, grads = model.loss_and_grads(xa, eps=eps, beta=beta, objective=objective)
    report = check_gradients(lambda: model._loss(xa, eps, beta, objective).loss, model.params, grads)
    assert report.passed, str(report)


def test_the_label_changes_the_decoder_and_the_loss_matches_log_weights():
    model = _model()
    xa = _xa(model, B=3)
    eps = np.random.default_rng(0).standard_normal((4, 3, 2))
    z = np.zeros((3, 2))
    assert not np.allclose(model.decode(z, 0), model.decode(z, 1))
    log_w = model.log_weights(xa, eps)
    # IWAE with L samples = -mean_b log mean_l w; the ELBO's MC part matches log w on average.
    iwae = -np.mean(np.log(np.mean(np.exp(log_w), axis=0)))
    assert model._loss(xa, eps, objective="iwae").loss == pytest.approx(iwae, rel=1e-12)
    # At L = 1 the IWAE bound is the single-sample ELBO with a sampled KL.
    e1 = eps[:1]
    assert model._loss(xa, e1, objective="iwae").loss == pytest.approx(-model.log_weights(xa, e1).mean(), rel=1e-12)


def test_labels_must_be_one_hot():
    model = _model()
    bad = _xa(model)
    bad[0, -1] = 0.5
    with pytest.raises(ValueError, match="must be one-hot labels"):
        model.loss_and_grads(bad)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        model.join(np.zeros((2, 6)), np.array([0, 3]))
    with pytest.raises(ValueError, match="1-D integer"):
        one_hot(np.array([0.5]), 3)


def test_save_load_round_trip(tmp_path):
    model = _model("gaussian")
    npvae.save(model, tmp_path / "c.npz")
    again = npvae.load(tmp_path / "c.npz")
    assert isinstance(again, ConditionalVAE) and again.get_config() == model.get_config()
    xa = _xa(model)
    np.testing.assert_array_equal(again.reconstruct(xa), model.reconstruct(xa))


def test_samples_of_each_digit_class_look_like_that_class():
    data = load_dataset("digits", seed=0)
    model = ConditionalVAE(64, 10, latent_dim=4, hidden=(128,), seed=0)
    npvae.fit(model, model.join(data.x_train, data.y_train), epochs=40, batch_size=64, seed=0)
    # A nearest-class-mean classifier fitted on the training images (about 90% accurate on
    # the real test images) labels the generated ones.
    means = np.stack([data.x_train[data.y_train == c].mean(axis=0) for c in range(10)])
    classify = lambda imgs: np.argmin(((imgs[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    assert np.mean(classify(data.x_test) == data.y_test) > 0.85
    rng = np.random.default_rng(1)
    accuracy = [np.mean(classify(model.sample(50, y=c, rng=rng)) == c) for c in range(10)]
    assert np.mean(accuracy) > 0.9, accuracy  # chance is 0.1 (all 10 classes reached 1.0 here)
    assert min(accuracy) > 0.7, accuracy


@pytest.mark.parametrize("free_bits", [0.01, 0.1])
def test_free_bits_gradient_and_value(free_bits):
    # Dimensions whose batch-mean KL is below the floor cost the floor and get no KL gradient.
    model = _model("gaussian")
    xa = _xa(model, B=5)
    eps = np.random.default_rng(3).standard_normal((2, 5, 2))
    mu, logvar = model.encode(xa)
    per_dim = np.mean(0.5 * (mu**2 + np.exp(logvar) - 1 - logvar), axis=0)
    # At 0.1 one dimension (KL 0.27) is above the floor and one (0.024) below; at 0.01 both
    # are above. Both stay far from the kink, where finite differences would straddle it.
    assert np.all(np.abs(per_dim - free_bits) > 1e-3) and np.any(per_dim > free_bits), per_dim
    assert free_bits < 0.05 or np.any(per_dim < free_bits), per_dim
    loss, grads = model.loss_and_grads(xa, eps=eps, beta=0.8, free_bits=free_bits)
    parts = model._loss(xa, eps, 0.8, "elbo", free_bits)
    assert loss == pytest.approx(parts.rec + 0.8 * np.maximum(per_dim, free_bits).sum(), rel=1e-12)
    report = check_gradients(lambda: model._loss(xa, eps, 0.8, "elbo", free_bits).loss, model.params, grads)
    assert report.passed, str(report)
