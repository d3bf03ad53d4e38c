"""Finite-difference gradient checking in float64.

For a loss f(theta) and an analytic gradient g, the central difference

    n_i = (f(theta + h e_i) - f(theta - h e_i)) / (2 h)

has error O(h^2) from truncation plus O(eps_machine * |f| / h) from rounding; with
float64 and h = 1e-5 both are around 1e-10 relative for the smooth losses here, so a
tolerance of 1e-6 leaves a wide margin while a gradient that is 0.1% wrong fails by a
factor of a thousand.

Error per parameter (one named array): max_i |g_i - n_i| / max(max_i |g_i|, max_i |n_i|, floor)
-- relative to the largest entry of that parameter's gradient, so entries that are exactly
zero (a dead ReLU, an unused input) do not divide rounding noise by zero. `floor` (1e-7)
makes a gradient that is zero everywhere compare in absolute terms.

Random-direction mode, for large models: for unit directions v drawn per parameter,
compare the directional derivative <g, v> with (f(theta + h v) - f(theta - h v)) / (2 h).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DEFAULT_H = 1e-5
DEFAULT_TOL = 1e-6
FLOOR = 1e-7


@dataclass
class ParamCheck:
    """Result for one named parameter; `analytic` / `numeric` are at the worst entry."""

    name: str
    shape: tuple
    rel_error: float
    analytic: float
    numeric: float
    n_checked: int
    passed: bool


@dataclass
class GradCheckReport:
    """The outcome of a gradient check: one result per named parameter.

    ``report.passed`` is the verdict, ``print(report)`` the table (one line per parameter:
    shape, entries or directions checked, the largest relative error, the analytic and
    numeric values at the worst entry, pass or FAIL), and ``report["encoder.0.W"]`` one
    parameter's result.

    Attributes
    ----------
    results : list of ParamCheck
        One per parameter, in the order checked: ``name``, ``shape``, ``rel_error``,
        ``analytic`` and ``numeric`` (at the worst entry), ``n_checked``, ``passed``.
    tol : float
        The largest relative error that passes.
    mode : {"full", "random"}
        Entries or random directions.
    """

    results: list = field(default_factory=list)
    tol: float = DEFAULT_TOL
    mode: str = "full"

    @property
    def passed(self):
        """True when every parameter's relative error is at most `tol`."""
        return all(r.passed for r in self.results)

    @property
    def max_rel_error(self):
        """The largest relative error over all parameters (0.0 for an empty report)."""
        return max((r.rel_error for r in self.results), default=0.0)

    def __getitem__(self, name):
        for r in self.results:
            if r.name == name:
                return r
        raise KeyError(name)

    def __str__(self):
        head = (f"{'parameter':<18} {'shape':>12} {'checked':>8} {'max rel err':>12} "
                f"{'analytic':>14} {'numeric':>14}  result")
        lines = [f"gradient check ({self.mode}, tol {self.tol:g})", head, "-" * len(head)]
        for r in self.results:
            lines.append(f"{r.name:<18} {str(r.shape):>12} {r.n_checked:>8} {r.rel_error:>12.2e} "
                         f"{r.analytic:>14.6e} {r.numeric:>14.6e}  {'pass' if r.passed else 'FAIL'}")
        verdict = "all passed" if self.passed else "FAILED"
        lines.append(f"{verdict}: max relative error {self.max_rel_error:.2e}")
        return "\n".join(lines)


def _central_difference(loss_fn, p, index, h):
    old = p[index]
    p[index] = old + h
    f_plus = loss_fn()
    p[index] = old - h
    f_minus = loss_fn()
    p[index] = old
    return (f_plus - f_minus) / (2 * h)


def check_gradients(loss_fn, params, grads, *, h=DEFAULT_H, tol=DEFAULT_TOL, mode="full",
                    max_entries=None, n_directions=3, seed=0):
    """Compare analytic `grads` with central differences of `loss_fn` for every parameter.

    The error of one parameter is the largest ``|g_i - n_i|`` over its checked entries,
    relative to the largest entry of its gradient (see the module docstring).

    Parameters
    ----------
    loss_fn : callable
        A function of no arguments returning the loss as a float for the current
        contents of `params` (which this function perturbs in place and restores).
    params : dict of str to ndarray
        The parameters, float64 arrays of any shapes.
    grads : dict of str to ndarray
        The analytic gradients, with the same keys and shapes as `params`.
    h : float
        The finite-difference step.
    tol : float
        The largest relative error that passes.
    mode : {"full", "random"}
        "full" checks every entry (or `max_entries` random entries per parameter);
        "random" checks `n_directions` random directional derivatives per parameter.
    max_entries : int, optional
        In "full" mode, check at most this many randomly chosen entries per parameter.
    n_directions : int
        In "random" mode, the number of random unit directions per parameter.
    seed : int
        Seeds the choice of entries or directions.

    Returns
    -------
    GradCheckReport
        ``report.passed`` is the verdict, ``print(report)`` the table.

    Raises
    ------
    ValueError
        For a parameter that is not float64, a gradient of another shape, or an unknown
        mode.
    """
    if mode not in ("full", "random"):
        raise ValueError(f"mode must be 'full' or 'random', got {mode!r}")
    rng = np.random.default_rng(seed)
    report = GradCheckReport(tol=tol, mode=mode)
    for name, p in params.items():
        if p.dtype != np.float64:
            raise ValueError(f"gradient checks need float64 parameters; {name} is {p.dtype} "
                             f"(build the model with dtype=np.float64)")
        g = np.asarray(grads[name], dtype=np.float64)
        if g.shape != p.shape:
            raise ValueError(f"gradient of {name} has shape {g.shape}, parameter {p.shape}")
        if mode == "full":
            a, n = _check_entries(loss_fn, p, g, h, max_entries, rng)
            scale = max(np.max(np.abs(a)), np.max(np.abs(n)), FLOOR)
            err = np.abs(a - n) / scale
        else:
            a, n = _check_directions(loss_fn, p, g, h, n_directions, rng)
            err = np.abs(a - n) / np.maximum(np.maximum(np.abs(a), np.abs(n)), FLOOR)
        worst = int(np.argmax(err))
        report.results.append(ParamCheck(name, tuple(p.shape), float(err[worst]), float(a[worst]),
                                         float(n[worst]), a.size, bool(err[worst] <= tol)))
    return report


def _check_entries(loss_fn, p, g, h, max_entries, rng):
    flat_indices = np.arange(p.size)
    if max_entries is not None and p.size > max_entries:
        flat_indices = rng.choice(p.size, size=max_entries, replace=False)
    numeric = np.empty(flat_indices.size)
    for j, flat_index in enumerate(flat_indices):
        numeric[j] = _central_difference(loss_fn, p, np.unravel_index(flat_index, p.shape), h)
    return g.ravel()[flat_indices], numeric


def _check_directions(loss_fn, p, g, h, n_directions, rng):
    analytic, numeric = np.empty(n_directions), np.empty(n_directions)
    saved = p.copy()
    for j in range(n_directions):
        v = rng.standard_normal(p.shape)
        v /= np.linalg.norm(v)
        p[...] = saved + h * v
        f_plus = loss_fn()
        p[...] = saved - h * v
        f_minus = loss_fn()
        p[...] = saved
        analytic[j] = float(np.sum(g * v))
        numeric[j] = (f_plus - f_minus) / (2 * h)
    return analytic, numeric


def check_model_gradients(model, x, eps=None, beta=1.0, n_samples=1, seed=0, *,
                          objective="elbo", free_bits=0.0, **kwargs):
    """Gradient check of model.loss_and_grads on x with fixed noise (drawn from `seed` if None).

    Every parameter's gradient of the objective (the negative ELBO, or with
    ``objective="iwae"`` the negative importance-weighted bound over the L samples) is
    compared with central differences of the same loss, computed forward only with the
    same noise.

    Parameters
    ----------
    model : VAE, ConditionalVAE or HierarchicalVAE
        A float64 model (``dtype=np.float64``).
    x : array, shape (B, input_width)
        A small batch of examples.
    eps : array, shape (L, B, noise_dim), optional
        The standard-normal noise; drawn from `seed` when None.
    beta : float
        The weight of the KL term.
    n_samples : int
        L, when `eps` is drawn (the k of the IWAE objective).
    seed : int
        Seeds the noise, and the entries or directions `check_gradients` picks.
    objective : {"elbo", "iwae"}
        The objective whose gradient is checked, as in `loss_and_grads`.
    free_bits : float
        The free-bits floor of the ELBO objective, as in `loss_and_grads`.
    **kwargs
        Passed to `check_gradients`: h, tol, mode, max_entries, n_directions.

    Returns
    -------
    GradCheckReport
        One result per parameter (``encoder.0.W``, ...).
    """
    x = model.check_input(x)
    if eps is None:
        eps = np.random.default_rng(seed).standard_normal((n_samples, x.shape[0], model.noise_dim))
    _, grads = model.loss_and_grads(x, eps=eps, beta=beta, objective=objective,
                                    free_bits=free_bits)
    eps = model._noise(eps, x.shape[0], n_samples)
    return check_gradients(lambda: model._loss(x, eps, beta, objective, free_bits).loss,
                           model.params, grads, seed=seed, **kwargs)
