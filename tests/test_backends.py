"""The numba and NumPy backends compute the same model: switch, gradients, training, allocations."""
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import npvae
from npvae.fast.backend import use_backend
from npvae.gradcheck import check_model_gradients

REPO = Path(__file__).resolve().parents[1]
LIKELIHOODS = ["bernoulli", "gaussian", "gaussian-learned", "continuous-bernoulli"]


def _data(likelihood, B, D, seed):
    rng = np.random.default_rng(seed)
    if likelihood in ("bernoulli", "continuous-bernoulli"):
        return rng.uniform(0.05, 0.95, (B, D))
    return rng.standard_normal((B, D))


# --------------------------------------------------------------------------- the switch


def test_set_backend_switches_and_validates():
    assert npvae.get_backend() in ("numba", "numpy")
    with use_backend("numpy"):
        assert npvae.get_backend() == "numpy"
        previous = npvae.set_backend("NUMBA")
        assert previous == "numpy" and npvae.get_backend() == "numba"
    with pytest.raises(ValueError, match="unknown backend"):
        npvae.set_backend("cuda")


def test_environment_variable_selects_backend():
    code = "import npvae; print(npvae.get_backend())"
    for value in ("numpy", "numba"):
        env = dict(os.environ, NPVAE_BACKEND=value, PYTHONPATH=str(REPO))
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == value


# --------------------------------------------------------------------------- same numbers

OBJECTIVES = [("elbo", 1.0, 0.0), ("elbo", 0.7, 0.0), ("elbo", 1.0, 0.4), ("iwae", 1.0, 0.0)]


def _family(kind, likelihood, activation="tanh", hidden=(7, 5)):
    """A small float64 model of each kind, and an input for it."""
    rng = np.random.default_rng(11)
    x = _data(likelihood, 5, 9, seed=1)
    if kind == "vae":
        return npvae.VAE(9, 3, hidden=hidden, activation=activation, likelihood=likelihood,
                         dtype=np.float64, seed=3), x
    if kind == "conditional":
        model = npvae.ConditionalVAE(9, 4, latent_dim=3, hidden=hidden, activation=activation,
                                     likelihood=likelihood, dtype=np.float64, seed=3)
        return model, model.join(x, rng.integers(0, 4, 5))
    model = npvae.HierarchicalVAE(9, (3, 2), hidden=(hidden, (4,)), activation=activation,
                                  likelihood=likelihood, dtype=np.float64, seed=3)
    return model, x


def _cases():
    for kind in ("vae", "conditional", "hierarchical"):
        for objective, beta, free_bits in OBJECTIVES:
            if kind == "hierarchical" and free_bits:
                continue  # its KL terms are sampled: no free bits
            for likelihood in LIKELIHOODS:
                yield kind, objective, beta, free_bits, likelihood


CASES = list(_cases())


def _step_both_backends(model, x, eps, beta, objective, free_bits):
    results = {}
    for name in ("numpy", "numba"):
        with use_backend(name):
            parts = model._loss_and_grads(x, eps, beta, objective, free_bits)
            results[name] = (parts, model.flat_grads.copy())
    return results["numpy"], results["numba"]


@pytest.mark.parametrize("kind, objective, beta, free_bits, likelihood", CASES)
def test_one_step_same_numbers_on_both_backends(kind, objective, beta, free_bits, likelihood):
    model, x = _family(kind, likelihood)
    eps = np.random.default_rng(2).standard_normal((3, 5, model.noise_dim))
    (ref, g_ref), (fast, g_fast) = _step_both_backends(model, x, eps, beta, objective, free_bits)
    np.testing.assert_allclose(fast, ref, rtol=1e-12)  # loss, rec, kl
    np.testing.assert_allclose(g_fast, g_ref, rtol=1e-10, atol=1e-12 * np.abs(g_ref).max())


@pytest.mark.parametrize("activation, hidden", [("relu", (6,)), ("softplus", ()), ("elu", (4,)),
                                                ("leaky_relu", (5,)), ("sigmoid", (5,))])
def test_every_activation_same_numbers_on_both_backends(activation, hidden):
    for kind in ("vae", "hierarchical"):
        model, x = _family(kind, "bernoulli", activation, hidden)
        eps = np.random.default_rng(2).standard_normal((2, 5, model.noise_dim))
        (ref, g_ref), (fast, g_fast) = _step_both_backends(model, x, eps, 1.0, "elbo", 0.0)
        np.testing.assert_allclose(fast, ref, rtol=1e-12)
        np.testing.assert_allclose(g_fast, g_ref, rtol=1e-10, atol=1e-12 * np.abs(g_ref).max())


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("kind, objective, beta, free_bits, likelihood",
                         [c for c in CASES if c[4] in ("bernoulli", "gaussian-learned")
                          or c[1] == "elbo" and c[2] == 0.7])
def test_gradient_check_float64(backend, kind, objective, beta, free_bits, likelihood):
    model, x = _family(kind, likelihood, hidden=(5,))
    eps = np.random.default_rng(1).standard_normal((2, 5, model.noise_dim))
    with use_backend(backend):
        _, grads = model.loss_and_grads(x, eps=eps, beta=beta, objective=objective, free_bits=free_bits)
        report = npvae.check_gradients(lambda: model._loss(x, eps, beta, objective, free_bits).loss,
                                       model.params, grads)
    assert report.passed, str(report)


def test_check_model_gradients_draws_noise_of_the_models_width():
    """The two-layer model's noise is (L, B, m1 + m2), not (L, B, latent_dim)."""
    model, x = _family("hierarchical", "bernoulli", hidden=(5,))
    report = check_model_gradients(model, x, n_samples=2, seed=1)
    assert report.passed, str(report)


@pytest.mark.parametrize("kind", ["vae", "conditional", "hierarchical"])
def test_gradient_check_catches_a_broken_latent_kernel(kind, monkeypatch):
    """The checks above can fail: a latent backward 1% off under the numba backend is rejected."""
    from npvae.fast import kernels

    real = kernels.latent_backward

    def wrong(dz, eps, h, std, z, w, prior, entropy, kl_w, dh):
        real(dz, eps, h, std, z, w, prior, entropy, kl_w, dh)
        dh[:, -1] *= 1.01

    monkeypatch.setattr(kernels, "latent_backward", wrong)
    model, x = _family(kind, "bernoulli", hidden=(5,))
    with use_backend("numba"):
        report = check_model_gradients(model, x, seed=1)
    assert not report.passed


@pytest.mark.parametrize("make_opt", [lambda: npvae.Adam(lr=1e-2),
                                      lambda: npvae.Adam(lr=1e-2, weight_decay=0.1),
                                      lambda: npvae.SGD(lr=0.1),
                                      lambda: npvae.SGD(lr=0.1, momentum=0.9, nesterov=True)])
@pytest.mark.parametrize("as_dict", [False, True])
def test_optimizer_backends_agree(make_opt, as_dict):
    rng = np.random.default_rng(0)
    p0 = rng.standard_normal(50)
    trajectories = []
    for name in ("numpy", "numba"):
        with use_backend(name):
            opt, p = make_opt(), p0.copy()
            params = {"w": p[:20].reshape(4, 5), "b": p[20:]} if as_dict else p
            for t in range(5):
                g = np.sin(p * (t + 1))
                grads = {"w": g[:20].reshape(4, 5), "b": g[20:]} if as_dict else g
                opt.step(params, grads)
            trajectories.append((p, opt.state_dict()))
    (p_ref, s_ref), (p_nb, s_nb) = trajectories
    np.testing.assert_allclose(p_nb, p_ref, rtol=1e-12)
    assert s_ref.keys() == s_nb.keys()
    for key in s_ref:
        np.testing.assert_allclose(s_nb[key], s_ref[key], rtol=1e-12)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_short_training_run(backend, mnist_split):
    x_train, x_test = mnist_split
    x, x_val = x_train[:600], x_test[:300]
    with use_backend(backend):
        model = npvae.VAE(784, 8, hidden=(64,), dtype=np.float32, seed=0)
        before = npvae.negative_elbo(model, x_val)[0]
        npvae.fit(model, x, epochs=2, batch_size=50, seed=0)
        after = npvae.negative_elbo(model, x_val)[0]
    assert np.isfinite(after) and after < before - 100  # about 543 -> 250 nats


def test_backends_train_to_the_same_model(mnist_split):
    """float32 runs of the two backends differ only by rounding: after 2 epochs the held-out
    negative ELBO agrees to a fraction of a nat."""
    x_train, x_test = mnist_split
    scores = []
    for backend in ("numpy", "numba"):
        with use_backend(backend):
            model = npvae.VAE(784, 8, hidden=(64,), dtype=np.float32, seed=0)
            npvae.fit(model, x_train[:600], epochs=2, batch_size=50, seed=0)
            scores.append(npvae.negative_elbo(model, x_test[:300])[0])
    assert abs(scores[0] - scores[1]) < 0.5, scores


# --------------------------------------------------------------------------- no allocation per step


def _peak_bytes_of_steps(model, opt, x, eps, objective="elbo", free_bits=0.0, n_steps=10):
    """Peak traced memory above the starting level over steps 2..n (step 1 builds state)."""
    def step():
        model._loss_and_grads(x, eps, 1.0, objective, free_bits)
        opt.step(model.flat_params, model.flat_grads)

    step()
    tracemalloc.start()
    try:
        step()  # any lazily created Python state settles
        base, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for _ in range(n_steps):
            step()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - base


ALLOC_CASES = [(kind, objective, beta, fb, lik) for kind, objective, beta, fb, lik in CASES if beta == 1.0]


@pytest.mark.parametrize("kind, objective, beta, free_bits, likelihood", ALLOC_CASES)
def test_training_step_allocates_no_arrays(kind, objective, beta, free_bits, likelihood):
    """At a fixed batch shape a step (model + Adam) under the numba backend allocates no arrays.

    The smallest per-step array here would be a (64,) float32 row of log-likelihoods (256
    bytes); the decoder output is 64 x 3 x 50 floats. What remains (< 4 kB) is Python's own
    small objects: the returned LossParts and its floats, argument tuples.
    """
    dims = dict(input_dim=50, dtype=np.float32, seed=0, likelihood=likelihood)
    if kind == "vae":
        model = npvae.VAE(latent_dim=6, hidden=(32,), **dims)
    elif kind == "conditional":
        model = npvae.ConditionalVAE(n_classes=4, latent_dim=6, hidden=(32,), **dims)
    else:
        model = npvae.HierarchicalVAE(latent_dims=(6, 4), hidden=((32,), (16,)), **dims)
    rng = np.random.default_rng(0)
    x = _data(likelihood, 64, 50, seed=0).astype(np.float32)
    if kind == "conditional":
        x = model.join(x, rng.integers(0, 4, 64))
    eps = rng.standard_normal((3, 64, model.noise_dim), dtype=np.float32)
    with use_backend("numba"):
        fast = _peak_bytes_of_steps(model, npvae.Adam(lr=1e-3), x, eps, objective, free_bits)
    with use_backend("numpy"):  # the measurement can see allocations: the twins make them
        reference = _peak_bytes_of_steps(model, npvae.Adam(lr=1e-3), x, eps, objective, free_bits,
                                         n_steps=2)
    assert fast < 4096, fast
    assert reference > 20_000, reference


def test_reference_model_step_allocates_no_arrays():
    """The same for the 784-400-20 model and batch 128, where an activation is 200 kB."""
    model = npvae.VAE(784, 20, hidden=(400,), dtype=np.float32, seed=0)
    rng = np.random.default_rng(0)
    x = (rng.random((128, 784)) < 0.3).astype(np.float32)
    eps = rng.standard_normal((1, 128, 20), dtype=np.float32)
    with use_backend("numba"):
        assert _peak_bytes_of_steps(model, npvae.Adam(lr=1e-3), x, eps) < 4096
