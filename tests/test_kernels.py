"""Each numba kernel in npvae.fast.kernels equals its NumPy twin on shapes and values hypothesis draws.

Tolerances. Kernel and twin evaluate the same formulas; they differ only in the order of
sums (the kernel's bias-gradient and loss sums run row by row, NumPy's pairwise) and in
libm versus NumPy's SIMD exp / log1p / tanh, each within a few ulp. So elementwise results
agree to a small multiple of the unit roundoff (float32 6e-8, float64 1.1e-16): rtol 2e-5
and 1e-12 leave a wide margin. A sum over n terms can lose n ulp of its largest term, so
sums are compared with an absolute tolerance of n * unit roundoff * sum of |terms|.
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npvae.fast import kernels as K
from npvae.distributions import LOGVAR_MAX, LOGVAR_MIN, soft_clamp

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


# --------------------------------------------------------------------------- activations


@FEW
@given(dtype=dtypes, seed=seeds, R=st.integers(1, 6), n=st.integers(1, 9),
       name=st.sampled_from(sorted(K.ACT_CODES)))
def test_bias_act_forward_matches_twin(dtype, seed, R, n, name):
    rng = np.random.default_rng(seed)
    a = (3 * rng.standard_normal((R, n))).astype(dtype)
    b = rng.standard_normal(n).astype(dtype)
    code, param = K.ACT_CODES[name], dtype(K.ACT_PARAMS.get(name, 0.0))
    got, want = a.copy(), a.copy()
    K.bias_act_forward(got, b, code, param)
    K.bias_act_forward_np(want, b, code, param)
    close(got, want, dtype)


@FEW
@given(dtype=dtypes, seed=seeds, R=st.integers(1, 6), n=st.integers(1, 9),
       name=st.sampled_from(sorted(K.ACT_CODES)))
def test_bias_act_backward_matches_twin(dtype, seed, R, n, name):
    rng = np.random.default_rng(seed)
    code, param = K.ACT_CODES[name], dtype(K.ACT_PARAMS.get(name, 0.0))
    y = (3 * rng.standard_normal((R, n))).astype(dtype)
    K.bias_act_forward_np(y, np.zeros(n, dtype), code, param)  # a valid output of the activation
    dy = rng.standard_normal((R, n)).astype(dtype)
    got, want = dy.copy(), dy.copy()
    db_got, db_want = np.empty(n, dtype), np.empty(n, dtype)
    K.bias_act_backward(got, y, code, param, db_got)
    K.bias_act_backward_np(want, y, code, param, db_want)
    # the softplus twin rebuilds a from y (a = log(expm1(y))), which costs a few ulp more
    slack = 1e-4 if (name == "softplus" and dtype is np.float32) else 0.0
    close(got, want, dtype, atol=slack)
    close(db_got, db_want, dtype, atol=sum_atol(want, dtype) + R * slack)


# --------------------------------------------------------------------------- likelihoods


def _likelihood_case(rng, dtype, L, B, P, data):
    x = (rng.random((B, P)) if data == "unit" else rng.standard_normal((B, P))).astype(dtype)
    a = (4 * rng.standard_normal((L * B, P))).astype(dtype)
    b = rng.standard_normal(P).astype(dtype)
    return x, a, b, dtype(1.0 / (L * B))


@FEW
@given(dtype=dtypes, seed=seeds, L=st.integers(1, 3), B=st.integers(1, 5), P=st.integers(1, 9),
       fused=st.booleans())
def test_bernoulli_loss_grad_matches_twin(dtype, seed, L, B, P, fused):
    rng = np.random.default_rng(seed)
    x, a, b, scale = _likelihood_case(rng, dtype, L, B, P, "unit")
    got, want = a.copy(), a.copy()
    db_got, db_want = np.empty(P, dtype), np.empty(P, dtype)
    colacc = np.empty(P)
    if fused:
        lp_got = K.bernoulli_loss_grad_fused(x, got, b, scale, db_got, colacc)
    else:
        lp_got = K.bernoulli_loss_grad(x, got, b, scale, db_got, colacc,
                                       np.empty_like(a), np.empty_like(a))
    lp_want = K.bernoulli_loss_grad_np(x, want, b, scale, db_want)
    close(got, want, dtype)
    close(db_got, db_want, dtype, atol=sum_atol(want, dtype))
    assert abs(lp_got - lp_want) <= sum_atol(np.abs(a) + 1, dtype)


@FEW
@given(dtype=dtypes, seed=seeds, L=st.integers(1, 3), B=st.integers(1, 5), P=st.integers(1, 9),
       sigma=st.floats(0.1, 3.0))
def test_gaussian_loss_grad_matches_twin(dtype, seed, L, B, P, sigma):
    rng = np.random.default_rng(seed)
    x, a, b, scale = _likelihood_case(rng, dtype, L, B, P, "normal")
    inv_var = dtype(sigma ** -2)
    sigma = float(inv_var) ** -0.5  # the sigma the kernel actually sees
    log_norm = -0.5 * P * (np.log(2 * np.pi) + 2 * np.log(sigma))
    got, want = a.copy(), a.copy()
    db_got, db_want = np.empty(P, dtype), np.empty(P, dtype)
    lp_got = K.gaussian_loss_grad(x, got, b, inv_var, log_norm, scale, db_got, np.empty(P))
    lp_want = K.gaussian_loss_grad_np(x, want, b, inv_var, log_norm, scale, db_want)
    close(got, want, dtype)
    close(db_got, db_want, dtype, atol=sum_atol(want, dtype))
    r = x[None] - (a + b).reshape(L, B, P)
    assert abs(lp_got - lp_want) <= sum_atol(inv_var * r * r + abs(log_norm), dtype)


@FEW
@given(dtype=dtypes, seed=seeds, L=st.integers(1, 3), B=st.integers(1, 5), D=st.integers(1, 6),
       fused=st.booleans())
def test_gaussian_learned_loss_grad_matches_twin(dtype, seed, L, B, D, fused):
    rng = np.random.default_rng(seed)
    x, a, b, scale = _likelihood_case(rng, dtype, L, B, 2 * D, "normal")
    a[:, D:] *= 3  # reach both soft-clamp bounds (+-9)
    x = x[:, :D].copy()
    got, want = a.copy(), a.copy()
    db_got, db_want = np.empty(2 * D, dtype), np.empty(2 * D, dtype)
    lo, hi = dtype(LOGVAR_MIN), dtype(LOGVAR_MAX)
    if fused:
        lp_got = K.gaussian_learned_loss_grad_fused(x, got, b, lo, hi, scale, db_got,
                                                    np.empty(2 * D))
    else:
        lp_got = K.gaussian_learned_loss_grad(x, got, b, lo, hi, scale, db_got, np.empty(2 * D),
                                              np.empty_like(a), np.empty_like(a))
    lp_want = K.gaussian_learned_loss_grad_np(x, want, b, lo, hi, scale, db_want)
    close(got, want, dtype)
    close(db_got, db_want, dtype, atol=sum_atol(want, dtype))
    f, r = (a + b)[:, :D].reshape(L, B, D), (a + b)[:, D:].reshape(L, B, D)
    logvar = soft_clamp(r.astype(np.float64))
    terms = (x - f) ** 2 * np.exp(-logvar) + np.abs(logvar) + 2  # what log p sums
    assert abs(lp_got - lp_want) <= 4 * sum_atol(terms, dtype)  # 4: exp's ulp times q


def test_bernoulli_kernel_is_stable_at_extreme_logits():
    x = np.array([[0.0, 1.0, 0.0, 1.0, 0.5]], np.float32)
    a = np.array([[-200.0, -200.0, 200.0, 200.0, 0.0]], np.float32)
    want, got = a.copy(), a.copy()
    db = np.empty(5, np.float32)
    lp = K.bernoulli_loss_grad(x, got, np.zeros(5, np.float32), np.float32(1), db, np.empty(5),
                               np.empty_like(a), np.empty_like(a))
    lp_want = K.bernoulli_loss_grad_np(x, want, np.zeros(5, np.float32), np.float32(1),
                                       np.empty(5, np.float32))
    assert np.isfinite(lp) and np.all(np.isfinite(got))
    np.testing.assert_allclose(got, want, atol=1e-7)
    assert lp == pytest.approx(lp_want, rel=1e-6)  # = -400 - log 2


# --------------------------------------------------------------------------- posterior


@FEW
@given(dtype=dtypes, seed=seeds, L=st.integers(1, 3), B=st.integers(1, 5), m=st.integers(1, 6),
       beta=st.floats(0.0, 2.0))
def test_reparam_kl_matches_twin(dtype, seed, L, B, m, beta):
    rng = np.random.default_rng(seed)
    h = rng.standard_normal((B, 2 * m)).astype(dtype)
    b = (0.5 * rng.standard_normal(2 * m)).astype(dtype)
    eps = rng.standard_normal((L, B, m)).astype(dtype)
    outs = []
    for forward, backward in [(K.reparam_kl_forward, K.reparam_kl_backward),
                              (K.reparam_kl_forward_np, K.reparam_kl_backward_np)]:
        hh, z, std = h.copy(), np.empty((L * B, m), dtype), np.empty((B, m), dtype)
        kl = forward(hh, b, eps, z, std)
        dz = np.cos(np.arange(L * B * m, dtype=dtype)).reshape(L * B, m)  # any upstream gradient
        dh, db = np.empty((B, 2 * m), dtype), np.empty(2 * m, dtype)
        backward(dz, eps, hh, std, dtype(beta / B), dh, db)
        outs.append((hh, z, std, kl, dh, db))
    (h1, z1, s1, kl1, dh1, db1), (h2, z2, s2, kl2, dh2, db2) = outs
    close(h1, h2, dtype)
    close(z1, z2, dtype)
    close(s1, s2, dtype)
    assert abs(kl1 - kl2) <= sum_atol(h2 * h2 + np.exp(h2) + 1, dtype)
    close(dh1, dh2, dtype, atol=sum_atol(dh2, dtype))
    close(db1, db2, dtype, atol=sum_atol(dh2, dtype))


# --------------------------------------------------------------------------- optimizers


@FEW
@given(dtype=dtypes, seed=seeds, n=st.integers(1, 300), t=st.integers(1, 50),
       wd=st.sampled_from([0.0, 0.01]))
def test_adam_update_matches_twin(dtype, seed, n, t, wd):
    rng = np.random.default_rng(seed)
    p, g = rng.standard_normal(n).astype(dtype), rng.standard_normal(n).astype(dtype)
    m, v = (0.1 * rng.standard_normal(n)).astype(dtype), rng.random(n).astype(dtype)
    lr, b1, b2 = 1e-3, 0.9, 0.999
    m[::7] *= np.finfo(dtype).tiny  # some entries that become subnormal: flushed to 0 by both
    args = tuple(dtype(s) for s in (b1, b2, lr / (1 - b1 ** t), 1 - b2 ** t, 1e-8, 1 - lr * wd,
                                    np.finfo(dtype).tiny))
    state = [(p.copy(), m.copy(), v.copy()) for _ in range(2)]
    K.adam_update(state[0][0], g, state[0][1], state[0][2], *args)
    K.adam_update_np(state[1][0], g, state[1][1], state[1][2], *args)
    for got, want in zip(state[0], state[1]):
        close(got, want, dtype)


@FEW
@given(dtype=dtypes, seed=seeds, n=st.integers(1, 300), momentum=st.sampled_from([0.0, 0.9]),
       nesterov=st.booleans())
def test_sgd_update_matches_twin(dtype, seed, n, momentum, nesterov):
    rng = np.random.default_rng(seed)
    p, g, v = (rng.standard_normal(n).astype(dtype) for _ in range(3))
    got, want = (p.copy(), v.copy()), (p.copy(), v.copy())
    tiny = np.finfo(dtype).tiny
    K.sgd_update(got[0], g, got[1], dtype(0.01), dtype(momentum), nesterov, tiny)
    K.sgd_update_np(want[0], g, want[1], dtype(0.01), dtype(momentum), nesterov, tiny)
    close(got[0], want[0], dtype)
    close(got[1], want[1], dtype)


# --------------------------------------------------------------------------- pure-Python run

_DISABLED_JIT_SCRIPT = """
import numpy as np, numba
from numba.core import config
assert config.DISABLE_JIT
import npvae
from npvae.fast import kernels as K
rng = np.random.default_rng(0)
x = rng.random((3, 5)); a = rng.standard_normal((6, 5)); b = rng.standard_normal(5)
db1, db2 = np.empty(5), np.empty(5)
a1, a2 = a.copy(), a.copy()
l1 = K.bernoulli_loss_grad(x, a1, b, 1 / 6, db1, np.empty(5), np.empty_like(a), np.empty_like(a))
l2 = K.bernoulli_loss_grad_np(x, a2, b, 1 / 6, db2)
assert np.allclose(a1, a2, rtol=1e-12) and np.allclose(db1, db2) and abs(l1 - l2) < 1e-10
model = npvae.VAE(5, 2, hidden=(4,), activation="tanh", dtype=np.float64, seed=0)
eps = rng.standard_normal((2, 3, 2))
npvae.set_backend("numba"); fused = model._loss_and_grads(x, eps, 1.0); g1 = model.flat_grads.copy()
npvae.set_backend("numpy"); ref = model._loss_and_grads(x, eps, 1.0); g2 = model.flat_grads.copy()
assert abs(fused.loss - ref.loss) < 1e-10 and np.allclose(g1, g2, rtol=1e-10, atol=1e-12)
opt = npvae.Adam(lr=1e-2); npvae.set_backend("numba"); opt.step(model.flat_params, g1)
print("ok")
"""


def test_kernels_run_as_python_with_jit_disabled():
    env = dict(os.environ, NUMBA_DISABLE_JIT="1", PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-c", _DISABLED_JIT_SCRIPT], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
