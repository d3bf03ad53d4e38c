"""Dense layers and activations, each a pure forward function with its backward beside it.

Conventions (see DESIGN.md):

* A Dense layer computes ``y = x @ W + b`` with ``W`` of shape ``(in, out)``.
* ``*_forward(...)`` returns ``(y, cache)``; ``*_backward(dy, cache)`` returns the
  gradient of the loss with respect to each input, given ``dy = dL/dy``.
* A gradient is named ``d<var>`` and means ``dL/d<var>``.

The activation backward rules are derived in ``notebooks/04_dense_backprop.ipynb``.
The classes at the bottom only hold state (parameter views, gradient views, the
cache of the last forward pass); all arithmetic is in the pure functions.
"""
from __future__ import annotations

import numpy as np

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


# --------------------------------------------------------------------------- state holders


class Dense:
    """Holds W (in, out), b (out,), their gradients and the cache of the last forward.

    `W`, `b`, `dW`, `db` are arrays owned elsewhere (views into the model's flat
    parameter and gradient buffers); the layer writes gradients into them in place.
    """

    def __init__(self, W, b, dW, db):
        self.W, self.b, self.dW, self.db = W, b, dW, db
        self.cache = None

    def forward(self, x):
        y, self.cache = dense_forward(x, self.W, self.b)
        return y

    def backward(self, dy, need_dx=True):
        dx, dW, db = dense_backward(dy, self.cache, need_dx)
        self.dW[...] = dW
        self.db[...] = db
        return dx


class Activation:
    """An elementwise activation; keeps the cache of its last forward."""

    def __init__(self, name):
        self.name = check_activation(name)
        self._forward, self._backward = ACTIVATIONS[self.name]
        self.cache = None

    def forward(self, a):
        y, self.cache = self._forward(a)
        return y

    def backward(self, dy):
        return self._backward(dy, self.cache)


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
    """Dense layers through `sizes` = [in, h0, ..., out] with `activation` after every hidden layer.

    The last layer is linear (its output goes to a distribution's parameters). With no
    hidden sizes, sizes = [in, out], the MLP is a single linear map.
    `params` and `grads` are dicts of arrays keyed by the names of `mlp_param_shapes`.
    """

    def __init__(self, prefix, sizes, activation, params, grads, out_name="out"):
        self.prefix = prefix
        self.sizes = list(sizes)
        self.activation = check_activation(activation)
        self.layers = []
        names = [n[:-2] for n, _ in mlp_param_shapes(prefix, sizes, out_name)[::2]]
        for i, name in enumerate(names):
            self.layers.append(Dense(params[f"{name}.W"], params[f"{name}.b"],
                                     grads[f"{name}.W"], grads[f"{name}.b"]))
            if i < len(names) - 1:
                self.layers.append(Activation(self.activation))

    def init(self, rng):
        """Initialise weights in place (He or Glorot by the following activation), biases to 0."""
        dense = [layer for layer in self.layers if isinstance(layer, Dense)]
        for i, layer in enumerate(dense):
            follows = self.activation if i < len(dense) - 1 else "identity"
            fan_in, fan_out = layer.W.shape
            layer.W[...] = init_weight(rng, fan_in, fan_out, follows)
            layer.b[...] = 0

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dy, need_dx=True):
        """Backpropagate dy = dL/d(output); returns dL/d(input), or None if not need_dx."""
        for layer in reversed(self.layers[1:]):
            dy = layer.backward(dy)
        return self.layers[0].backward(dy, need_dx)
