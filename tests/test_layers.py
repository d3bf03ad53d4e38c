"""Dense layers and activations: forward values, backward rules, initialisation."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npvae import layers
from npvae.gradcheck import check_gradients
from conftest import away_from_kinks

KINKED = {"relu", "leaky_relu", "elu"}


def _activation_check(name, shape, seed):
    """Check d/da of sum(w * f(a)) for a fixed random w, with a kept away from kinks."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(shape) * 2
    if name in KINKED:
        a = away_from_kinks(a, 1e-2)
    w = rng.standard_normal(shape)
    forward, backward = layers.ACTIVATIONS[name]
    params = {"a": a}
    _, cache = forward(a)
    grads = {"a": backward(w, cache)}
    return check_gradients(lambda: float(np.sum(w * forward(params["a"])[0])), params, grads)


@pytest.mark.parametrize("name", sorted(layers.ACTIVATIONS))
@settings(max_examples=5, deadline=None)
@given(b=st.integers(1, 5), n=st.integers(1, 7), seed=st.integers(0, 2**31))
def test_activation_backward_matches_finite_differences(name, b, n, seed):
    report = _activation_check(name, (b, n), seed)
    assert report.passed, str(report)


@settings(max_examples=10, deadline=None)
@given(b=st.integers(1, 6), n_in=st.integers(1, 6), n_out=st.integers(1, 6), seed=st.integers(0, 2**31))
def test_dense_backward_matches_finite_differences(b, n_in, n_out, seed):
    rng = np.random.default_rng(seed)
    p = {"x": rng.standard_normal((b, n_in)), "W": rng.standard_normal((n_in, n_out)),
         "b": rng.standard_normal(n_out)}
    w = rng.standard_normal((b, n_out))
    y, cache = layers.dense_forward(p["x"], p["W"], p["b"])
    np.testing.assert_allclose(y, p["x"] @ p["W"] + p["b"])
    dx, dW, db = layers.dense_backward(w, cache)
    report = check_gradients(lambda: float(np.sum(w * layers.dense_forward(p["x"], p["W"], p["b"])[0])),
                             p, {"x": dx, "W": dW, "b": db})
    assert report.passed, str(report)


def test_activation_values():
    a = np.array([-2.0, -0.5, 0.5, 3.0])
    np.testing.assert_array_equal(layers.relu_forward(a)[0], [0, 0, 0.5, 3.0])
    np.testing.assert_allclose(layers.leaky_relu_forward(a)[0], [-0.02, -0.005, 0.5, 3.0])
    np.testing.assert_allclose(layers.elu_forward(a)[0], [np.exp(-2) - 1, np.exp(-0.5) - 1, 0.5, 3.0])
    np.testing.assert_allclose(layers.sigmoid_forward(a)[0], 1 / (1 + np.exp(-a)), rtol=1e-15)
    np.testing.assert_allclose(layers.softplus_forward(a)[0], np.log1p(np.exp(a)), rtol=1e-15)
    np.testing.assert_allclose(layers.tanh_forward(a)[0], np.tanh(a))
    np.testing.assert_array_equal(layers.identity_forward(a)[0], a)


def test_sigmoid_and_softplus_are_stable_at_extreme_inputs():
    a = np.array([-1e4, -800.0, -40.0, 40.0, 800.0, 1e4])
    with np.errstate(over="raise", divide="raise", invalid="raise"):  # underflow to 0 is fine
        s = layers.sigmoid(a)
        sp = layers.softplus(a)
    assert np.all(np.isfinite(s)) and np.all(np.isfinite(sp))
    np.testing.assert_allclose(s[2], np.exp(-40.0), rtol=1e-14)  # no underflow to 0 at -40
    np.testing.assert_array_equal(s[-2:], [1.0, 1.0])
    np.testing.assert_allclose(sp[2], np.exp(-40.0), rtol=1e-14)  # log1p precision kept
    np.testing.assert_allclose(sp[-3:], a[-3:], rtol=1e-15)
    assert sp[0] == 0.0 and sp[1] == 0.0


def test_mlp_with_no_hidden_layer_is_a_linear_map():
    shapes = layers.mlp_param_shapes("enc", [3, 4])
    assert shapes == [("enc.out.W", (3, 4)), ("enc.out.b", (4,))]
    rng = np.random.default_rng(0)
    params = {n: rng.standard_normal(s) for n, s in shapes}
    grads = {n: np.zeros(s) for n, s in shapes}
    mlp = layers.MLP("enc", [3, 4], "relu", params, grads)
    x = rng.standard_normal((5, 3))
    np.testing.assert_allclose(mlp.forward(x), x @ params["enc.out.W"] + params["enc.out.b"])


def test_mlp_names_follow_the_design():
    names = [n for n, _ in layers.mlp_param_shapes("decoder", [2, 5, 4, 6])]
    assert names == ["decoder.0.W", "decoder.0.b", "decoder.1.W", "decoder.1.b",
                     "decoder.out.W", "decoder.out.b"]


def test_initialisation_scales():
    rng = np.random.default_rng(0)
    he = layers.init_weight(rng, 400, 300, "relu")
    assert he.std() == pytest.approx(np.sqrt(2 / 400), rel=0.01)
    glorot = layers.init_weight(rng, 400, 300, "tanh")
    r = np.sqrt(6 / 700)
    assert glorot.min() >= -r and glorot.max() <= r
    assert glorot.std() == pytest.approx(r / np.sqrt(3), rel=0.01)  # std of U(-r, r)


def test_unknown_activation_names_the_choices():
    with pytest.raises(ValueError, match="unknown activation 'swish'.*relu"):
        layers.check_activation("swish")
    assert layers.check_activation("Leaky-ReLU") == "leaky_relu"
