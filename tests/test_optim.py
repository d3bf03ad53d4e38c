"""Optimizers: Adam's first step and bias correction, convergence, momentum, clipping."""
import numpy as np
import pytest

import npvae
from npvae.optim import warmup_cosine


def test_adam_first_step_is_lr_times_sign_of_the_gradient():
    g = np.array([3.0, -0.02, 1e-3, -250.0])
    p = np.zeros(4)
    npvae.Adam(lr=0.01).step(p, g)
    # Exactly -lr * g / (|g| + eps) = -lr * sign(g) * |g| / (|g| + 1e-8).
    np.testing.assert_allclose(p, -0.01 * np.sign(g) * np.abs(g) / (np.abs(g) + 1e-8), rtol=1e-14)
    np.testing.assert_allclose(p, -0.01 * np.sign(g), rtol=1e-5)


def test_adam_bias_correction_makes_a_constant_gradient_a_constant_step():
    # With g constant the corrected moments are exactly g and g^2 at every t.
    g = np.array([0.5, -2.0])
    p = np.zeros(2)
    opt = npvae.Adam(lr=0.1, eps=0.0 + 1e-300)
    for t in range(1, 6):
        opt.step(p, g)
        np.testing.assert_allclose(p, -0.1 * t * np.sign(g), rtol=1e-12)


def test_adam_minimises_a_quadratic():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((5, 5))
    H = A @ A.T + np.eye(5)  # positive definite
    target = rng.standard_normal(5)
    p = np.zeros(5)
    opt = npvae.Adam(lr=0.05)
    for _ in range(3000):
        opt.step(p, H @ (p - target))
    np.testing.assert_allclose(p, target, atol=1e-6)


def test_adam_weight_decay_is_decoupled():
    p = np.array([2.0, -4.0])
    npvae.Adam(lr=0.1, weight_decay=0.5).step(p, np.zeros(2))
    np.testing.assert_allclose(p, [2.0 * 0.95, -4.0 * 0.95])  # no gradient: pure shrinkage


def test_sgd_momentum_follows_its_recurrence_and_converges():
    g_seq = [np.array([1.0]), np.array([-2.0]), np.array([0.5])]
    p, opt = np.zeros(1), npvae.SGD(lr=0.1, momentum=0.9)
    v = np.zeros(1)
    expected = np.zeros(1)
    for g in g_seq:
        opt.step(p, g)
        v = 0.9 * v + g
        expected = expected - 0.1 * v
        np.testing.assert_allclose(p, expected, rtol=1e-15)
    q = np.array([5.0, -3.0])
    for nesterov in (False, True):
        opt = npvae.SGD(lr=0.05, momentum=0.8, nesterov=nesterov)
        p = np.zeros(2)
        for _ in range(500):
            opt.step(p, 2 * (p - q))
        np.testing.assert_allclose(p, q, atol=1e-8)


def test_optimizers_accept_dicts_of_arrays():
    params = {"a": np.ones(2), "b": np.ones((2, 2))}
    npvae.Adam(lr=0.5).step(params, {"a": np.ones(2), "b": -np.ones((2, 2))})
    np.testing.assert_allclose(params["a"], 0.5, rtol=1e-6)
    np.testing.assert_allclose(params["b"], 1.5, rtol=1e-6)
    with pytest.raises(ValueError, match="different keys"):
        npvae.Adam().step(params, {"a": np.ones(2)})


def test_state_dict_round_trip_continues_identically():
    rng = np.random.default_rng(1)
    grads = [rng.standard_normal(4) for _ in range(6)]
    p1, o1 = np.zeros(4), npvae.Adam(lr=0.01)
    for g in grads[:3]:
        o1.step(p1, g)
    p2, o2 = p1.copy(), npvae.Adam(lr=0.01)
    o2.load_state_dict(o1.state_dict())
    for g in grads[3:]:
        o1.step(p1, g)
        o2.step(p2, g)
    np.testing.assert_array_equal(p1, p2)


def test_clip_grad_norm():
    g = {"a": np.array([3.0, 0.0]), "b": np.array([[4.0]])}
    assert npvae.clip_grad_norm(g, 10.0) == pytest.approx(5.0)
    np.testing.assert_array_equal(g["a"], [3.0, 0.0])  # below the limit: untouched
    assert npvae.clip_grad_norm(g, 1.0) == pytest.approx(5.0)
    assert npvae.global_norm(g) == pytest.approx(1.0)
    np.testing.assert_allclose(g["a"], [0.6, 0.0])
    flat = np.array([np.nan, 1.0])
    assert np.isnan(npvae.clip_grad_norm(flat, 1.0))  # reported, not hidden


def test_schedules_and_a_callable_learning_rate():
    s = warmup_cosine(1.0, total_steps=110, warmup_steps=10, final_lr=0.1)
    assert s(5) == pytest.approx(0.5) and s(10) == pytest.approx(1.0)
    assert s(60) == pytest.approx(0.55) and s(110) == pytest.approx(0.1)
    p = np.zeros(1)
    opt = npvae.SGD(lr=lambda t: 0.1 * t)
    opt.step(p, np.ones(1))
    opt.step(p, np.ones(1))
    np.testing.assert_allclose(p, [-0.3])


def test_bad_hyperparameters_are_refused():
    with pytest.raises(ValueError, match="lr"):
        npvae.Adam(lr=-1)
    with pytest.raises(ValueError, match="momentum"):
        npvae.SGD(momentum=1.0)
    with pytest.raises(ValueError, match="betas"):
        npvae.Adam(betas=(0.9, 1.0))
