"""Dense layers and activations, each a pure forward function with its backward beside it.

Conventions:

* A Dense layer computes ``y = x @ W + b`` with ``W`` of shape ``(in, out)``.
* ``*_forward(...)`` returns ``(y, cache)``; ``*_backward(dy, cache)`` returns the
  gradient of the loss with respect to each input, given ``dy = dL/dy``.
* A gradient is named ``d<var>`` and means ``dL/d<var>``.

The activation backward rules are derived in ``notebooks/04_dense_backprop.ipynb``.

The `Dense` block at the bottom is what the models are made of. It runs the same math on
buffers it owns: ``x @ W`` written by BLAS into a preallocated output, then bias and
activation in one pass (`bias_act_forward`), and backward the activation's derivative fused
with the bias gradient (`bias_act_backward`). Each of those has a NumPy twin here
(``*_np``, built from the pure functions above it) and a numba kernel in
npvae/fast/dense.py; the backend (npvae.fast.backend) picks which one runs.
"""
from __future__ import annotations

import numpy as np

from .fast import backend
from .params import Workspace

# --------------------------------------------------------------------------- Dense


def dense_forward(x, W, b):
    """y = x @ W + b.   x: (B, in), W: (in, out), b: (out,) -> y: (B, out)."""
    y = x @ W + b  # (B, out)
    return y, (x, W)


def dense_backward(dy, cache, need_dx=True):
    """Backward of y = x @ W + b.

    dx = dy @ W^T   (B, in)     -- None when need_dx is False (the model's input layer)
    dW = x^T @ dy   (in, out)   -- summed over the batch, because W is shared by every row
    db = sum_B dy   (out,)
    """
    x, W = cache
    dx = dy @ W.T if need_dx else None
    dW = x.T @ dy
    db = dy.sum(axis=0)
    return dx, dW, db


# --------------------------------------------------------------------------- activations
# Each activation maps a pre-activation `a` to `y` elementwise, so its backward is
# da = dy * y'(a).  The cache holds whatever makes y'(a) cheap to compute.


def identity_forward(a):
    """y = a."""
    return a, None


def identity_backward(dy, cache):
    """y' = 1."""
    return dy


def relu_forward(a):
    """y = max(a, 0)."""
    y = np.maximum(a, 0)
    return y, a


def relu_backward(dy, cache):
    """y' = 1 for a > 0, else 0 (the subgradient 0 is taken at the kink a = 0)."""
    a = cache
    return dy * (a > 0)


LEAKY_SLOPE = 0.01


def leaky_relu_forward(a, slope=LEAKY_SLOPE):
    """y = a for a > 0, slope * a otherwise."""
    y = np.where(a > 0, a, slope * a)
    return y, (a, slope)


def leaky_relu_backward(dy, cache):
    """y' = 1 for a > 0, slope otherwise."""
    a, slope = cache
    return dy * np.where(a > 0, 1.0, slope).astype(dy.dtype, copy=False)


def tanh_forward(a):
    """y = tanh(a)."""
    y = np.tanh(a)
    return y, y


def tanh_backward(dy, cache):
    """y' = 1 - tanh(a)^2 = 1 - y^2."""
    y = cache
    return dy * (1 - y * y)


def sigmoid(a):
    """Logistic function 1 / (1 + exp(-a)), evaluated without overflow for any a.

    For a >= 0 it uses 1 / (1 + exp(-a)); for a < 0 the equal form exp(a) / (1 + exp(a)),
    so exp never sees a large positive argument.
    """
    a = np.asarray(a)
    e = np.exp(-np.abs(a))  # in (0, 1]
    return np.where(a >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid_forward(a):
    """y = sigmoid(a)."""
    y = sigmoid(a)
    return y, y


def sigmoid_backward(dy, cache):
    """y' = sigmoid(a) * (1 - sigmoid(a)) = y (1 - y)."""
    y = cache
    return dy * y * (1 - y)


def softplus(a):
    """softplus(a) = log(1 + exp(a)), computed as max(a, 0) + log1p(exp(-|a|)).

    The rewrite is exact: for a > 0, log(1 + e^a) = a + log(1 + e^-a). It never
    overflows, and for very negative a it returns e^a to full relative precision.
    """
    a = np.asarray(a)
    return np.maximum(a, 0) + np.log1p(np.exp(-np.abs(a)))


def softplus_forward(a):
    """y = softplus(a) = log(1 + exp(a))."""
    return softplus(a), a


def softplus_backward(dy, cache):
    """y' = exp(a) / (1 + exp(a)) = sigmoid(a)."""
    a = cache
    return dy * sigmoid(a)


ELU_ALPHA = 1.0


def elu_forward(a, alpha=ELU_ALPHA):
    """y = a for a > 0, alpha * (exp(a) - 1) otherwise (expm1 keeps precision near 0)."""
    y = np.where(a > 0, a, alpha * np.expm1(np.minimum(a, 0)))
    return y, (a, y, alpha)


def elu_backward(dy, cache):
    """y' = 1 for a > 0, alpha * exp(a) = y + alpha otherwise."""
    a, y, alpha = cache
    return dy * np.where(a > 0, 1, y + alpha)


ACTIVATIONS = {
    "identity": (identity_forward, identity_backward),
    "relu": (relu_forward, relu_backward),
    "leaky_relu": (leaky_relu_forward, leaky_relu_backward),
    "tanh": (tanh_forward, tanh_backward),
    "sigmoid": (sigmoid_forward, sigmoid_backward),
    "softplus": (softplus_forward, softplus_backward),
    "elu": (elu_forward, elu_backward),
}

# Integer codes for the kernels, which branch on a number, not a name; the parameter is the
# leaky-ReLU slope or the ELU alpha (0 for the others).
ACT_CODES = {name: code for code, name in enumerate(ACTIVATIONS)}
ACT_PARAMS = {"leaky_relu": LEAKY_SLOPE, "elu": ELU_ALPHA}

# Activations whose positive half is (close to) the identity and whose negative half
# is flat or small: they get He initialisation, the others Glorot.
RELU_LIKE = frozenset({"relu", "leaky_relu", "elu"})


def check_activation(name):
    """Return `name` normalised ("leaky-relu" -> "leaky_relu"), or raise naming the valid ones."""
    key = str(name).lower().replace("-", "_")
    if key not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}")
    return key


# --------------------------------------------------------------------------- initialisation


def init_weight(rng, fan_in, fan_out, activation, dtype=np.float64):
    """Draw a (fan_in, fan_out) weight matrix for a layer followed by `activation`.

    * He (Kaiming) normal, std = sqrt(2 / fan_in), for ReLU-like activations: it keeps the
      second moment of the pre-activations constant from layer to layer when half of the
      units are switched off (He et al., 2015).
    * Glorot (Xavier) uniform, U(-r, r) with r = sqrt(6 / (fan_in + fan_out)), for tanh,
      sigmoid, softplus and for the linear output heads (Glorot & Bengio, 2010).

    Biases start at zero (see `MLP`). Draws come from the model's own Generator.
    """
    if activation in RELU_LIKE:
        W = rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)
    else:
        r = np.sqrt(6.0 / (fan_in + fan_out))
        W = rng.uniform(-r, r, size=(fan_in, fan_out))
    return W.astype(dtype)


# --------------------------------------------------------------------------- fused blocks


def bias_act_forward_np(a, b, activation):
    """Twin of the kernel: in place a <- act(a + b), through the pure *_forward functions."""
    forward = ACTIVATIONS[activation][0]
    a[...] = forward(a + b)[0]


def bias_act_backward_np(dy, y, activation, db):
    """Twin of the kernel: in place dy <- dy * act'(a), db <- sum over rows of it.

    The kernel keeps only y = act(a), so the twin rebuilds the cache each *_backward expects
    from y: a = y where the activation is the identity on its positive half, and
    a = log(expm1(y)), the inverse of softplus, for the softplus.
    """
    backward = ACTIVATIONS[activation][1]
    if activation == "leaky_relu":
        cache = (y, LEAKY_SLOPE)  # y has the sign of a
    elif activation == "elu":
        cache = (y, y, ELU_ALPHA)
    elif activation == "softplus":
        cache = np.log(np.expm1(y.astype(np.float64))).astype(y.dtype)
    else:
        cache = y  # identity: unused; relu: y > 0 exactly where a > 0; tanh, sigmoid: y
    da = backward(dy, cache)
    dy[...] = da
    db[...] = da.sum(axis=0)


def bias_act_forward(a, b, activation):
    """In place a <- act(a + b); a: (R, n) holding x @ W, b: (n,)."""
    K = backend.kernels()
    if K is None:
        return bias_act_forward_np(a, b, activation)
    if activation == "tanh":  # numba's tanh is a scalar call, NumPy's a SIMD loop: let it do that part
        K.bias_act_forward(a, b, ACT_CODES["identity"], a.dtype.type(0))
        np.tanh(a, out=a)
        return
    K.bias_act_forward(a, b, ACT_CODES[activation], a.dtype.type(ACT_PARAMS.get(activation, 0)))


def bias_act_backward(dy, y, activation, db):
    """In place dy <- dloss/da = dy * act'(a) given y = act(a); db <- the bias gradient."""
    K = backend.kernels()
    if K is None:
        return bias_act_backward_np(dy, y, activation, db)
    K.bias_act_backward(dy, y, ACT_CODES[activation], dy.dtype.type(ACT_PARAMS.get(activation, 0)), db)


def scale_rows(d, w):
    """In place d[r, :] <- w[r] * d[r, :]; d: (R, n), w: (R,)."""
    K = backend.kernels()
    if K is None:
        d *= w[:, None]
        return
    K.scale_rows(d, w)


def add_scaled(dst, src, alpha):
    """In place dst <- dst + alpha * src (src may be a strided view, on which a NumPy ufunc
    would allocate a buffer; the kernel does not)."""
    K = backend.kernels()
    if K is None:
        dst += alpha * src
        return
    K.add_scaled(dst, src, dst.dtype.type(alpha))


class Dense:
    """y = act(x @ W + b): W (in, out), b (out,), their gradients dW, db, and its buffers.

    `W`, `b`, `dW`, `db` are views into the model's flat parameter and gradient buffers; the
    block writes its gradients into them in place. The arrays `forward` and `backward`
    return are the block's own buffers, reused by the next call with the same number of
    rows: a caller who keeps one copies it.
    """

    def __init__(self, W, b, dW, db, activation="identity"):
        self.W, self.b, self.dW, self.db = W, b, dW, db
        self.activation = check_activation(activation)
        self.ws = Workspace()
        self.x = self.y = None

    def forward(self, x):
        """x: (R, in) -> y: (R, out); keeps x and y for backward."""
        y = self.ws.get("y", (x.shape[0], self.W.shape[1]), self.W.dtype)
        np.matmul(x, self.W, out=y)
        bias_act_forward(y, self.b, self.activation)
        self.x, self.y = x, y
        return y

    def backward(self, dy, need_dx=True):
        """dy: dloss/dy (R, out), overwritten with dloss/d(x @ W + b). Writes dW, db; returns
        dloss/dx (R, in), or None when need_dx is False (a model's input layer)."""
        bias_act_backward(dy, self.y, self.activation, self.db)
        np.matmul(self.x.T, dy, out=self.dW)
        if not need_dx:
            return None
        dx = self.ws.get("dx", self.x.shape, self.W.dtype)
        np.matmul(dy, self.W.T, out=dx)
        return dx


def mlp_param_shapes(prefix, sizes, out_name="out"):
    """Parameter names and shapes of an MLP through `sizes` = [in, h0, h1, ..., out].

    Hidden layer i is named f"{prefix}.{i}", the last layer f"{prefix}.{out_name}".
    Returns a list of (name, shape) in forward order.
    """
    shapes = []
    n_layers = len(sizes) - 1
    for i in range(n_layers):
        name = f"{prefix}.{out_name}" if i == n_layers - 1 else f"{prefix}.{i}"
        shapes.append((f"{name}.W", (sizes[i], sizes[i + 1])))
        shapes.append((f"{name}.b", (sizes[i + 1],)))
    return shapes


class MLP:
    """Dense blocks through `sizes` = [in, h0, ..., out], `activation` after every hidden layer.

    The last layer is linear (its output goes to a distribution's parameters). With no
    hidden sizes, sizes = [in, out], the MLP is a single linear map.
    `params` and `grads` are dicts of arrays keyed by the names of `mlp_param_shapes`.
    """

    def __init__(self, prefix, sizes, activation, params, grads, out_name="out"):
        self.prefix = prefix
        self.sizes = list(sizes)
        self.activation = check_activation(activation)
        names = [n[:-2] for n, _ in mlp_param_shapes(prefix, sizes, out_name)[::2]]
        self.layers = [Dense(params[f"{name}.W"], params[f"{name}.b"], grads[f"{name}.W"],
                             grads[f"{name}.b"], self.activation if i < len(names) - 1 else "identity")
                       for i, name in enumerate(names)]

    def init(self, rng):
        """Initialise weights in place (He or Glorot by the following activation), biases to 0."""
        for layer in self.layers:
            fan_in, fan_out = layer.W.shape
            layer.W[...] = init_weight(rng, fan_in, fan_out, layer.activation)
            layer.b[...] = 0

    def forward(self, x):
        """x: (R, sizes[0]) -> (R, sizes[-1]), a buffer of the last block."""
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dy, need_dx=True):
        """Backpropagate dy = dL/d(output), which is overwritten; returns dL/d(input), or None."""
        for layer in reversed(self.layers[1:]):
            dy = layer.backward(dy)
        return self.layers[0].backward(dy, need_dx)
