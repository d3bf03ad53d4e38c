"""Each numba kernel equals its NumPy twin on shapes and values hypothesis draws.

Every block (Dense's bias + activation, the likelihoods, the latent block, the objectives'
sample weights, the optimizers) runs its kernel under the "numba" backend and its twin under
"numpy"; here each pair is run on the same inputs. Tolerances: kernel and twin evaluate the
same formulas and differ only in the order of sums and in libm against NumPy's SIMD
transcendental functions, each within a few ulp; so elementwise results agree to a small
multiple of the unit roundoff (float32 6e-8, float64 1.1e-16): rtol 2e-5 and 1e-12 leave a
wide margin. A sum over n terms can lose n ulp of its largest term, so sums are compared
with an absolute tolerance of n * unit roundoff * sum of |terms|.
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npvae import latent, layers, likelihoods, objectives, optim
from npvae.fast import kernels as K
from npvae.fast.backend import use_backend

REPO = Path(__file__).resolve().parents[1]
RTOL = {np.float32: 2e-5, np.float64: 1e-12}
UNIT = {np.float32: 6e-8, np.float64: 1.2e-16}
FEW = settings(max_examples=12, deadline=None)

dtypes = st.sampled_from([np.float32, np.float64])
seeds = st.integers(0, 2**31 - 1)


def close(a, b, dtype, atol=0.0):
    np.testing.assert_allclose(a, b, rtol=RTOL[dtype], atol=atol + 10 * UNIT[dtype])


def sum_atol(terms, dtype):
    """Allowed difference between two orderings of a sum of `terms`."""
    terms = np.abs(np.asarray(terms, dtype=np.float64))
    return 4 * terms.size * UNIT[dtype] * float(terms.sum()) + 10 * UNIT[dtype]


# --------------------------------------------------------------------------- Dense


@FEW
@given(dtype=dtypes, seed=seeds, R=st.integers(1, 6), n=st.integers(1, 9),
       name=st.sampled_from(sorted(layers.ACT_CODES)))
def test_bias_act_forward_matches_twin(dtype, seed, R, n, name):
    rng = np.random.default_rng(seed)
    a = (3 * rng.standard_normal((R, n))).astype(dtype)
    b = rng.standard_normal(n).astype(dtype)
    got, want = a.copy(), a.copy()
    K.bias_act_forward(got, b, layers.ACT_CODES[name], dtype(layers.ACT_PARAMS.get(name, 0.0)))
    layers.bias_act_forward_np(want, b, name)
    close(got, want, dtype)


@FEW
@given(dtype=dtypes, seed=seeds, R=st.integers(1, 6), n=st.integers(1, 9),
       name=st.sampled_from(sorted(layers.ACT_CODES)))
def test_bias_act_backward_matches_twin(dtype, seed, R, n, name):
    rng = np.random.default_rng(seed)
    y = (3 * rng.standard_normal((R, n))).astype(dtype)
    layers.bias_act_forward_np(y, np.zeros(n, dtype), name)  # a valid output of the activation
    dy = rng.standard_normal((R, n)).astype(dtype)
    got, want = dy.copy(), dy.copy()
    db_got, db_want = np.empty(n, dtype), np.empty(n, dtype)
    K.bias_act_backward(got, y, layers.ACT_CODES[name], dtype(layers.ACT_PARAMS.get(name, 0.0)), db_got)
    layers.bias_act_backward_np(want, y, name, db_want)
    # the softplus twin rebuilds a from y (a = log(expm1(y))), which costs a few ulp more
    slack = 1e-4 if (name == "softplus" and dtype is np.float32) else 0.0
    close(got, want, dtype, atol=slack)
    close(db_got, db_want, dtype, atol=sum_atol(want, dtype) + R * slack)


@FEW
@given(dtype=dtypes, seed=seeds, R=st.integers(1, 6), n=st.integers(1, 9))
def test_scale_rows_matches_twin(dtype, seed, R, n):
    rng = np.random.default_rng(seed)
    d, w = rng.standard_normal((R, n)).astype(dtype), rng.standard_normal(R)
    got, want = d.copy(), d.copy()
    with use_backend("numba"):
        layers.scale_rows(got, w)
    with use_backend("numpy"):
        layers.scale_rows(want, w)
    close(got, want, dtype)


# --------------------------------------------------------------------------- likelihoods


def _rows_both_backends(lik, x, out):
    """(logp, dout) of the likelihood block under each backend, on copies of out."""
    results = []
    for name in ("numba", "numpy"):
        with use_backend(name):
            logp, dout = lik.log_prob_and_grad_rows(x, out.copy())
            results.append((logp.copy(), dout.copy()))
    return results


LIKELIHOODS = {"bernoulli": likelihoods.Bernoulli(), "gaussian": likelihoods.Gaussian(0.7),
               "gaussian-learned": likelihoods.GaussianLearned(),
               "continuous-bernoulli": likelihoods.ContinuousBernoulli()}


@FEW
@given(dtype=dtypes, seed=seeds, L=st.integers(1, 3), B=st.integers(1, 5), D=st.integers(1, 9),
       name=st.sampled_from(sorted(LIKELIHOODS)), spread=st.sampled_from([0.01, 1.0, 5.0]))
def test_likelihood_kernels_match_twins(dtype, seed, L, B, D, name, spread):
    """spread 0.01 puts the continuous Bernoulli's logits on its series branch (|l| < 2e-2);
    spread 5 drives the learned variance against both soft-clamp bounds."""
    lik = LIKELIHOODS[name]
    rng = np.random.default_rng(seed)
    x = (rng.random((B, D)) if lik.support == (0.0, 1.0) else rng.standard_normal((B, D))).astype(dtype)
    out = (spread * rng.standard_normal((L * B, lik.n_outputs(D)))).astype(dtype)
    if name == "gaussian-learned":
        out[:, D:] *= 3
    (lp_k, g_k), (lp_t, g_t) = _rows_both_backends(lik, x, out)
    close(g_k, g_t, dtype, atol=10 * UNIT[dtype])
    terms = np.abs(lik.log_prob(x, out.reshape(L, B, -1))) + np.abs(out).sum(-1).reshape(L, B) + D
    np.testing.assert_allclose(lp_k, lp_t, rtol=0, atol=4 * sum_atol(terms, dtype))


@pytest.mark.parametrize("name", ["bernoulli", "continuous-bernoulli"])
def test_likelihood_kernels_are_stable_at_extreme_logits(name):
    lik = LIKELIHOODS[name]
    x = np.array([[0.0, 1.0, 0.0, 1.0, 0.5]], np.float32)
    out = np.array([[-200.0, -200.0, 200.0, 200.0, 0.0]], np.float32)
    (lp_k, g_k), (lp_t, g_t) = _rows_both_backends(lik, x, out)
    assert np.all(np.isfinite(lp_k)) and np.all(np.isfinite(g_k))
    np.testing.assert_allclose(g_k, g_t, atol=1e-6)
    np.testing.assert_allclose(lp_k, lp_t, rtol=1e-6)


# --------------------------------------------------------------------------- latent block


def _latent_case(rng, dtype, L, B, m):
    h = rng.standard_normal((B, 2 * m)).astype(dtype)
    eps = rng.standard_normal((L, B, m)).astype(dtype)
    return h, eps


@FEW
@given(dtype=dtypes, seed=seeds, L=st.integers(1, 3), B=st.integers(1, 5), m=st.integers(1, 6))
def test_latent_forward_kernels_match_twins(dtype, seed, L, B, m):
    rng = np.random.default_rng(seed)
    h, eps = _latent_case(rng, dtype, L, B, m)
    outs = []
    for rep, kl, ratio, log_q in [(K.reparameterize, K.kl_per_dim, K.log_prior_ratio, K.log_q),
                                  (latent.reparameterize_np, latent.kl_per_dim_np,
                                   latent.log_prior_ratio_np, latent.log_q_np)]:
        z, std = np.empty((L * B, m), dtype), np.empty((B, m), dtype)
        rep(h, eps, z, std)
        k, r, q = np.empty(m), np.empty(L * B), np.empty(L * B)
        kl(h, std, k)
        ratio(z, eps, h, r)
        log_q(eps, h, q)
        outs.append((z, std, k, r, q))
    (z1, s1, k1, r1, q1), (z2, s2, k2, r2, q2) = outs
    close(z1, z2, dtype)
    close(s1, s2, dtype)
    close(k1, k2, dtype, atol=sum_atol(h * h + np.exp(h) + 1, dtype))
    big = np.abs(z2).sum() + np.abs(eps).sum() + np.abs(h).sum() + m
    close(r1, r2, dtype, atol=sum_atol(big, dtype))
    close(q1, q2, np.float64 if dtype is np.float64 else dtype, atol=sum_atol(big, dtype))


@FEW
@given(dtype=dtypes, seed=seeds, L=st.integers(1, 3), B=st.integers(1, 5), m=st.integers(1, 6),
       prior=st.booleans(), entropy=st.booleans())
def test_latent_backward_kernel_matches_twin(dtype, seed, L, B, m, prior, entropy):
    rng = np.random.default_rng(seed)
    h, eps = _latent_case(rng, dtype, L, B, m)
    z, std = np.empty((L * B, m), dtype), np.empty((B, m), dtype)
    latent.reparameterize_np(h, eps, z, std)
    dz = rng.standard_normal((L * B, m)).astype(dtype)
    w, kl_w = rng.random(L * B), rng.random(m)
    got, want = np.empty((B, 2 * m), dtype), np.empty((B, 2 * m), dtype)
    K.latent_backward(dz, eps, h, std, z, w, prior, entropy, kl_w, got)
    latent.latent_backward_np(dz, eps, h, std, z, w, prior, entropy, kl_w, want)
    close(got, want, dtype, atol=sum_atol(np.abs(dz).sum() * (1 + np.abs(eps).max()) + L * m, dtype))


@FEW
@given(seed=seeds, L=st.integers(1, 6), B=st.integers(1, 5), scale=st.sampled_from([1.0, 300.0]))
def test_softmax_samples_matches_twin(seed, L, B, scale):
    """scale 300: log weights far apart, where an unshifted exp would overflow."""
    log_w = scale * np.random.default_rng(seed).standard_normal((L, B))
    a_k, a_t = np.empty((L, B)), np.empty((L, B))
    total_k = K.softmax_samples(log_w, a_k)
    total_t = objectives.iwae_weights_np(log_w, a_t)
    np.testing.assert_allclose(a_k, a_t, rtol=1e-12, atol=1e-300)
    assert total_k == pytest.approx(total_t, rel=1e-12, abs=1e-12 * scale)


# --------------------------------------------------------------------------- optimizers


@FEW
@given(dtype=dtypes, seed=seeds, n=st.integers(1, 300), t=st.integers(1, 50),
       wd=st.sampled_from([0.0, 0.01]), parallel=st.booleans())
def test_adam_update_matches_twin(dtype, seed, n, t, wd, parallel):
    rng = np.random.default_rng(seed)
    p, g = rng.standard_normal(n).astype(dtype), rng.standard_normal(n).astype(dtype)
    m, v = (0.1 * rng.standard_normal(n)).astype(dtype), rng.random(n).astype(dtype)
    lr, b1, b2 = 1e-3, 0.9, 0.999
    m[::7] *= np.finfo(dtype).tiny  # some entries that become subnormal: flushed to 0 by both
    args = tuple(dtype(s) for s in (b1, b2, lr / (1 - b1 ** t), 1 - b2 ** t, 1e-8, 1 - lr * wd,
                                    np.finfo(dtype).tiny))
    state = [(p.copy(), m.copy(), v.copy()) for _ in range(2)]
    (K.adam_update if parallel else K.adam_update_serial)(state[0][0], g, state[0][1], state[0][2], *args)
    optim.adam_update_np(state[1][0], g, state[1][1], state[1][2], *args)
    for got, want in zip(state[0], state[1]):
        close(got, want, dtype)


@FEW
@given(dtype=dtypes, seed=seeds, n=st.integers(1, 300), momentum=st.sampled_from([0.0, 0.9]),
       nesterov=st.booleans(), parallel=st.booleans())
def test_sgd_update_matches_twin(dtype, seed, n, momentum, nesterov, parallel):
    rng = np.random.default_rng(seed)
    p, g, v = (rng.standard_normal(n).astype(dtype) for _ in range(3))
    got, want = (p.copy(), v.copy()), (p.copy(), v.copy())
    tiny = np.finfo(dtype).tiny
    (K.sgd_update if parallel else K.sgd_update_serial)(got[0], g, got[1], dtype(0.01), dtype(momentum),
                                                         nesterov, tiny)
    optim.sgd_update_np(want[0], g, want[1], dtype(0.01), dtype(momentum), nesterov, tiny)
    close(got[0], want[0], dtype)
    close(got[1], want[1], dtype)


# --------------------------------------------------------------------------- pure-Python run

_DISABLED_JIT_SCRIPT = """
import numpy as np
from numba.core import config
assert config.DISABLE_JIT
import npvae
rng = np.random.default_rng(0)
x = rng.random((3, 5))
for model in (npvae.VAE(5, 2, hidden=(4,), activation="tanh", dtype=np.float64, seed=0),
              npvae.HierarchicalVAE(5, (2, 2), hidden=((4,), (3,)), dtype=np.float64, seed=0)):
    eps = rng.standard_normal((2, 3, model.noise_dim))
    npvae.set_backend("numba"); fast = model._loss_and_grads(x, eps, 1.0); g1 = model.flat_grads.copy()
    npvae.set_backend("numpy"); ref = model._loss_and_grads(x, eps, 1.0); g2 = model.flat_grads.copy()
    assert abs(fast.loss - ref.loss) < 1e-10 and np.allclose(g1, g2, rtol=1e-10, atol=1e-12)
opt = npvae.Adam(lr=1e-2); npvae.set_backend("numba"); opt.step(model.flat_params, g1)
print("ok")
"""


def test_kernels_run_as_python_with_jit_disabled():
    env = dict(os.environ, NUMBA_DISABLE_JIT="1", PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-c", _DISABLED_JIT_SCRIPT], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
