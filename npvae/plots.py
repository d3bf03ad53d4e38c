"""Figures of a trained VAE, drawn headless with matplotlib's Agg renderer and saved as PNG.

Every figure is a matplotlib `Figure` attached to an Agg canvas directly, never through
pyplot: nothing here opens a window, switches the process-wide backend (a notebook that
imports this module keeps its own) or keeps figures alive in pyplot's registry.

Pure helpers (`tile`, `gaussian_grid`, `pca_2d`, `interpolate`) do the arithmetic; the
`plot_*` functions draw one figure each and return the path written; `draw_run_figures`
draws the set a run folder holds.
"""
from __future__ import annotations

from pathlib import Path
from statistics import NormalDist

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

FIGURE_NAMES = ("loss", "reconstructions", "samples", "manifold", "latent", "interpolation")


# ------------------------------------------------------------------ pure helpers


def tile(images, n_cols, pad=1, fill=1.0):
    """Arrange images (N, H, W) in a grid with n_cols columns and `pad` pixels between them.

    Returns one (rows * (H + pad) - pad, n_cols * (W + pad) - pad) array; empty cells and the
    padding hold `fill`.
    """
    images = np.asarray(images, dtype=np.float64)
    n, h, w = images.shape
    n_rows = -(-n // n_cols)
    out = np.full((n_rows * (h + pad) - pad, n_cols * (w + pad) - pad), fill, dtype=np.float64)
    for i in range(n):
        r, c = divmod(i, n_cols)
        out[r * (h + pad):r * (h + pad) + h, c * (w + pad):c * (w + pad) + w] = images[i]
    return out


def gaussian_grid(n, lo=0.05, hi=0.95):
    """An (n * n, 2) grid of latent points at the standard-normal quantiles of linspace(lo, hi, n).

    Equal steps in probability rather than in z, so the grid covers the prior's mass evenly.
    Row-major from the top left: the first coordinate runs along a row (left to right), the
    second down the columns (largest at the top, like a y axis).
    """
    q = np.array([NormalDist().inv_cdf(p) for p in np.linspace(lo, hi, n)])
    q[np.abs(q) < 1e-12] = 0.0  # the median, exactly
    z1, z2 = np.meshgrid(q, q[::-1])
    return np.stack([z1.ravel(), z2.ravel()], axis=1)


def pca_2d(x):
    """Project rows of x (N, k) on their two leading principal axes (via SVD of the centred data).

    Returns (projection (N, 2), fraction of the variance each axis explains (2,)). For k = 1
    the second coordinate is zero.
    """
    x = np.asarray(x, dtype=np.float64)
    xc = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(xc, full_matrices=False)  # xc = U S V^T; rows of V^T are the axes
    k = min(2, vt.shape[0])
    proj = np.zeros((x.shape[0], 2))
    proj[:, :k] = xc @ vt[:k].T
    var = s ** 2
    frac = np.zeros(2)
    frac[:k] = var[:k] / var.sum() if var.sum() > 0 else 0.0
    return proj, frac


def interpolate(z_a, z_b, n_steps):
    """n_steps points on the straight line from z_a to z_b, both ends included: (n_steps, m)."""
    t = np.linspace(0.0, 1.0, n_steps)[:, None]
    return (1 - t) * np.asarray(z_a, dtype=np.float64) + t * np.asarray(z_b, dtype=np.float64)


def as_images(x, image_shape):
    """Rows (N, D) -> images (N, H, W), clipped to [0, 1] for display."""
    return np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0).reshape(-1, *image_shape)


# ------------------------------------------------------------------ drawing


def _new_figure(width, height):
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


def _show_grid(ax, grid, title=None):
    ax.imshow(grid, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=10)


def plot_losses(history, path, title=None):
    """Negative ELBO per epoch (train and validation) and, beside it, its two parts."""
    fig = _new_figure(10, 4)
    ax_loss, ax_parts = fig.subplots(1, 2)
    epochs = np.asarray(history.epoch)
    ax_loss.plot(epochs, history.train_loss, label="train")
    if np.isfinite(history.val_loss).any():
        ax_loss.plot(epochs, history.val_loss, label="validation")
    ax_loss.set(xlabel="epoch", ylabel="negative ELBO (nats per example)",
                title=title or "loss")
    ax_loss.legend()
    ax_parts.plot(epochs, history.train_rec, label="reconstruction (train)", color="C0")
    ax_parts.plot(epochs, history.train_kl, label="KL (train)", color="C1")
    if np.isfinite(history.val_loss).any():
        ax_parts.plot(epochs, history.val_rec, "--", label="reconstruction (val)", color="C0")
        ax_parts.plot(epochs, history.val_kl, "--", label="KL (val)", color="C1")
    ax_parts.set(xlabel="epoch", ylabel="nats per example", title="-E[log p(x|z)] and KL")
    ax_parts.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def plot_reconstructions(x, x_rec, image_shape, path, n_cols=10):
    """Originals and their reconstructions in alternating rows (original above its copy)."""
    x, x_rec = as_images(x, image_shape), as_images(x_rec, image_shape)
    n = x.shape[0]
    pairs = []
    for start in range(0, n, n_cols):
        row = x[start:start + n_cols]
        rec = x_rec[start:start + n_cols]
        blank = np.ones((n_cols - row.shape[0], *image_shape))
        pairs += [row, blank, rec, blank]
    grid = tile(np.concatenate(pairs), n_cols)
    fig = _new_figure(n_cols * 0.8, grid.shape[0] / grid.shape[1] * n_cols * 0.8 + 0.5)
    _show_grid(fig.subplots(), grid, "originals (odd rows) and reconstructions (even rows)")
    fig.tight_layout()
    return _save(fig, path)


def plot_images(x, image_shape, path, n_cols=8, title=None):
    """A grid of images (for samples from the prior)."""
    grid = tile(as_images(x, image_shape), n_cols)
    fig = _new_figure(6, 6 * grid.shape[0] / grid.shape[1] + 0.4)
    _show_grid(fig.subplots(), grid, title)
    fig.tight_layout()
    return _save(fig, path)


def plot_manifold(model, image_shape, path, n=15):
    """Decoded means over an n x n grid of Gaussian quantiles of a 2-D latent space."""
    if model.latent_dim != 2:
        raise ValueError(f"the manifold figure needs latent_dim 2, the model has {model.latent_dim}")
    z = gaussian_grid(n).astype(model.dtype)
    grid = tile(as_images(model.decode(z), image_shape), n, pad=1)
    fig = _new_figure(7, 7)
    _show_grid(fig.subplots(), grid,
               "decoded latent grid (z1 left to right, z2 bottom to top, 5%..95% quantiles)")
    fig.tight_layout()
    return _save(fig, path)


def plot_latent(mu, labels, path):
    """Posterior means coloured by label: the two latent axes, or their PCA when latent_dim != 2."""
    mu = np.asarray(mu, dtype=np.float64)
    labels = np.asarray(labels)
    fig = _new_figure(6.5, 5.5)
    ax = fig.subplots()
    if mu.shape[1] == 2:
        xy, xlabel, ylabel = mu, "z1 (posterior mean)", "z2 (posterior mean)"
    elif mu.shape[1] == 1:
        jitter = np.random.default_rng(0).uniform(-0.3, 0.3, mu.shape[0])
        xy = np.stack([mu[:, 0], np.where(labels >= 0, labels, 0) + jitter], axis=1)
        xlabel, ylabel = "z (posterior mean)", "label (jittered)"
    else:
        xy, frac = pca_2d(mu)
        xlabel = f"principal axis 1 ({100 * frac[0]:.0f}% of variance)"
        ylabel = f"principal axis 2 ({100 * frac[1]:.0f}% of variance)"
    known = labels >= 0
    if known.any():
        ten = labels.max() < 10  # digit-like labels: one tab10 colour and one tick each
        points = ax.scatter(xy[known, 0], xy[known, 1], c=labels[known], cmap="tab10", s=6,
                            alpha=0.8, vmin=-0.5 if ten else None, vmax=9.5 if ten else None)
        fig.colorbar(points, ax=ax, label="label", ticks=range(10) if ten else None)
    if (~known).any():
        ax.scatter(xy[~known, 0], xy[~known, 1], s=6, alpha=0.5, color="gray", label="no label")
        ax.legend(fontsize=8)
    ax.set(xlabel=xlabel, ylabel=ylabel, title="test set in latent space")
    fig.tight_layout()
    return _save(fig, path)


def plot_interpolation(model, x_a, x_b, image_shape, path, n_steps=10):
    """Originals at both ends, the decoded straight line between their posterior means inside."""
    mu, _ = model.encode(np.stack([x_a, x_b]).astype(model.dtype))
    z = interpolate(mu[0], mu[1], n_steps).astype(model.dtype)
    strip = np.concatenate([as_images(x_a[None], image_shape), as_images(model.decode(z), image_shape),
                            as_images(x_b[None], image_shape)])
    grid = tile(strip, strip.shape[0])
    fig = _new_figure(strip.shape[0] * 0.8, 1.4)
    _show_grid(fig.subplots(), grid, "original | decoded interpolation of the means | original")
    fig.tight_layout()
    return _save(fig, path)


def pick_pair(mu, n_candidates=200):
    """Indices (0, j) of two examples to interpolate between: example 0 and, among the first
    n_candidates, the one whose posterior mean lies farthest from it (a long, varied path)."""
    mu = np.asarray(mu, dtype=np.float64)[:n_candidates]
    if mu.shape[0] < 2:
        return 0, 0
    return 0, int(np.argmax(np.sum((mu - mu[0]) ** 2, axis=1)))


def draw_run_figures(model, x, y, image_shape, history, folder, seed=0, n_show=20,
                     n_latent=2000):
    """Draw every figure of a run into `folder`; returns (written paths, notes on skipped ones).

    x, y: held-out examples and labels (the first n_show are reconstructed, the first
    n_latent placed in the latent scatter). Image figures need `image_shape`; for flat data
    they are skipped with a note, and the manifold needs latent_dim 2.
    """
    folder = Path(folder)
    written, notes = [], []
    if history is not None and len(history.epoch):
        written.append(plot_losses(history, folder / "loss.png"))
    mu, _ = model.encode(x[:n_latent])
    written.append(plot_latent(mu, y[:n_latent], folder / "latent.png"))
    if image_shape is None:
        notes.append("the data has no image shape: reconstructions, samples, manifold and "
                     "interpolation figures skipped")
        return written, notes
    written.append(plot_reconstructions(x[:n_show], model.reconstruct(x[:n_show]), image_shape,
                                        folder / "reconstructions.png"))
    rng = np.random.default_rng(seed)
    written.append(plot_images(model.sample(64, rng=rng), image_shape, folder / "samples.png",
                               title="samples from the prior (decoder means)"))
    if model.latent_dim == 2:
        written.append(plot_manifold(model, image_shape, folder / "manifold.png"))
    else:
        notes.append(f"latent_dim is {model.latent_dim}: the manifold figure needs 2")
    a, b = pick_pair(mu)
    written.append(plot_interpolation(model, x[a], x[b], image_shape, folder / "interpolation.png"))
    return written, notes
