"""The finite-difference checker must pass exact gradients and reject slightly wrong ones."""
import numpy as np
import pytest

from npvae.gradcheck import check_gradients


def _problem(seed=0):
    """f(A, b) = sum(sin(A @ c) * b) + 0.5 |b|^2 with its exact gradient."""
    rng = np.random.default_rng(seed)
    params = {"A": rng.standard_normal((4, 3)), "b": rng.standard_normal(4)}
    c = rng.standard_normal(3)

    def loss():
        return float(np.sum(np.sin(params["A"] @ c) * params["b"]) + 0.5 * params["b"] @ params["b"])

    def grads():
        u = params["A"] @ c
        return {"A": np.outer(np.cos(u) * params["b"], c), "b": np.sin(u) + params["b"]}

    return params, loss, grads


@pytest.mark.parametrize("mode", ["full", "random"])
def test_exact_gradient_passes_tightly(mode):
    params, loss, grads = _problem()
    report = check_gradients(loss, params, grads(), mode=mode)
    assert report.passed, str(report)
    assert report.max_rel_error < 1e-8


@pytest.mark.parametrize("mode", ["full", "random"])
def test_rejects_gradient_scaled_by_one_part_in_a_thousand(mode):
    params, loss, grads = _problem()
    wrong = {k: v * 1.001 for k, v in grads().items()}
    report = check_gradients(loss, params, wrong, mode=mode)
    assert not report.passed
    assert all(not r.passed for r in report.results)
    assert all(r.rel_error == pytest.approx(1e-3, rel=0.01) for r in report.results)


def test_rejects_one_entry_off_by_a_tenth_of_a_percent():
    params, loss, grads = _problem(seed=3)
    g = grads()
    i = np.unravel_index(np.argmax(np.abs(g["A"])), g["A"].shape)
    g["A"][i] *= 1.001
    report = check_gradients(loss, params, g)
    assert not report["A"].passed and report["b"].passed
    assert report["A"].analytic == pytest.approx(1.001 * report["A"].numeric, rel=1e-7)


def test_parameters_are_restored_and_report_prints_both_columns():
    params, loss, grads = _problem()
    before = {k: v.copy() for k, v in params.items()}
    report = check_gradients(loss, params, grads())
    for k in params:
        np.testing.assert_array_equal(params[k], before[k])
    text = str(report)
    assert "analytic" in text and "numeric" in text and "A" in text and "pass" in text


def test_float32_parameters_are_refused():
    params = {"w": np.ones(3, dtype=np.float32)}
    with pytest.raises(ValueError, match="float64"):
        check_gradients(lambda: 0.0, params, {"w": np.zeros(3)})


def test_zero_gradient_is_compared_in_absolute_terms():
    # f does not depend on w at all: analytic 0, numeric 0 up to rounding -> pass, no 0/0.
    params = {"w": np.ones(3), "v": np.arange(3.0)}
    report = check_gradients(lambda: float(np.sum(params["v"] ** 2)), params,
                             {"w": np.zeros(3), "v": 2 * params["v"]})
    assert report.passed, str(report)
    # A wrong nonzero claim for an unused parameter fails.
    report = check_gradients(lambda: float(np.sum(params["v"] ** 2)), params,
                             {"w": np.full(3, 1e-3), "v": 2 * params["v"]})
    assert not report["w"].passed


@pytest.mark.parametrize("model_kind", ["vae", "hierarchical"])
def test_model_check_follows_the_objective(model_kind):
    """check_model_gradients checks the gradient of the objective it is given: the IWAE
    gradient (self-normalised weights over the k samples) passes against the IWAE loss
    and fails against the ELBO's, so the check sees which objective it differentiates."""
    import npvae
    from npvae.gradcheck import check_model_gradients

    rng = np.random.default_rng(0)
    x = (rng.random((3, 6)) < 0.5).astype(np.float64)
    if model_kind == "vae":
        model = npvae.VAE(6, latent_dim=2, hidden=(5,), dtype=np.float64, seed=1)
    else:
        model = npvae.HierarchicalVAE(6, latent_dims=(2, 2), hidden=((5,), (4,)),
                                      dtype=np.float64, seed=1)
    eps = rng.standard_normal((4, 3, model.noise_dim))
    report = check_model_gradients(model, x, eps=eps, objective="iwae", mode="full")
    assert report.passed, report
    _, iwae_grads = model.loss_and_grads(x, eps=eps, objective="iwae")
    elbo_loss = lambda: model._loss(model.check_input(x), eps, 1.0, "elbo").loss  # noqa: E731
    assert not check_gradients(elbo_loss, model.params, iwae_grads, mode="full").passed
