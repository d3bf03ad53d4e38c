"""Figures of a trained VAE, drawn headless with matplotlib's Agg renderer and saved as PNG.

Every figure is a matplotlib `Figure` attached to an Agg canvas directly, never through
pyplot: nothing here opens a window, switches the process-wide backend (a notebook that
imports this module keeps its own) or keeps figures alive in pyplot's registry.

Pure helpers (`tile`, `gaussian_grid`, `pca_2d`, `interpolate`, `traversal_codes`) do the
arithmetic; the `plot_*` functions draw one figure each and return the path written;
`draw_run_figures` draws the set a run folder holds. Every file is written atomically
(temporary file, then rename), as checkpoints are.

A conditional VAE (a model with `n_classes`) reads joined rows [x | onehot(y)]; its figures
show the x columns, decode with the label, and add `classes.png`: one row of prior samples
per class.

Two figures look for posterior collapse, latent dimensions the decoder does not use.
`kl_per_dimension.png` shows each dimension's held-out KL(q(z_j|x) || N(0, 1)): a
dimension whose posterior mean barely moves with x (Var_x(mu_j) <= 0.01, an inactive
unit, Burda et al., 2016) carries almost no information about x, and training usually
drives its KL to about 0 as well.
`traversals.png` shows what a dimension does: it moves one coordinate of an example's
posterior mean across the prior, so an active dimension changes the decoded image along
its row and a collapsed one leaves the row unchanged (Higgins et al., 2017).
"""
from __future__ import annotations

from pathlib import Path
from statistics import NormalDist

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from ..evaluate import active_units, kl_per_dimension
from ..files import atomic_write
from ..limits import check_array
from ..train import ACTIVE_THRESHOLD, DIAGNOSTIC_ROWS

FIGURE_NAMES = ("loss", "reconstructions", "samples", "manifold", "latent", "interpolation",
                "kl_per_dimension", "traversals")
CLASSES_FIGURE = "classes"  # conditional runs only


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


def normal_quantiles(n, lo=0.05, hi=0.95):
    """The standard-normal quantiles of linspace(lo, hi, n), increasing: shape (n,).

    Equal steps in probability rather than in z, so n points cover the prior's mass evenly
    (the median is exactly 0 when n is odd).
    """
    q = np.array([NormalDist().inv_cdf(p) for p in np.linspace(lo, hi, n)])
    q[np.abs(q) < 1e-12] = 0.0  # the median, exactly
    return q


def gaussian_grid(n, lo=0.05, hi=0.95):
    """An (n * n, 2) grid of latent points at the standard-normal quantiles of linspace(lo, hi, n).

    Equal steps in probability rather than in z, so the grid covers the prior's mass evenly.
    Row-major from the top left: the first coordinate runs along a row (left to right), the
    second down the columns (largest at the top, like a y axis).
    """
    q = normal_quantiles(n, lo, hi)
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


def dims_by_kl(kl):
    """The latent dimensions ordered by their KL, largest first (ties by index): (J,) ints."""
    return np.argsort(-np.asarray(kl, dtype=np.float64), kind="stable")


def traversal_codes(z0, dims, values):
    """Codes that sweep one coordinate of z0 at a time: (len(dims) * len(values), J).

    Row r * len(values) + c is z0 with coordinate dims[r] set to values[c]; every other
    coordinate is z0's. Decoded and tiled len(values) to a row, row r shows what moving
    dimension dims[r] alone does to the example z0 encodes.

    Parameters
    ----------
    z0 : array, shape (J,)
        The base code (e.g. an example's posterior mean).
    dims : sequence of int, length K
        The coordinates to sweep, each in [0, J).
    values : sequence of float, length V
        The values each swept coordinate takes, in column order.

    Returns
    -------
    array, shape (K * V, J)
        float64 codes.
    """
    z0 = np.asarray(z0, dtype=np.float64)
    dims = np.asarray(dims)
    values = np.asarray(values, dtype=np.float64)
    if z0.ndim != 1:
        raise ValueError(f"z0 must be one code, shape (J,), got shape {z0.shape}")
    if dims.ndim != 1 or values.ndim != 1:
        raise ValueError(f"dims and values must be 1-D, got shapes {dims.shape} and "
                         f"{values.shape}")
    if dims.size and (dims.dtype.kind not in "iu" or dims.min() < 0 or dims.max() >= z0.size):
        raise ValueError(f"dims must be integers in [0, {z0.size}), got {dims.tolist()}")
    check_array((dims.size * values.size, z0.size), 8, "the traversal codes")
    codes = np.tile(z0, (dims.size * values.size, 1))  # (K V, J)
    rows = np.arange(dims.size * values.size)
    codes[rows, np.repeat(dims, values.size)] = np.tile(values, dims.size)
    return codes


def as_images(x, image_shape):
    """Rows (N, D) -> images (N, H, W), clipped to [0, 1] for display."""
    return np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0).reshape(-1, *image_shape)


# ------------------------------------------------------------------ drawing


def _new_figure(width, height):
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def image_format(path):
    """The image format for `path`'s suffix (png, pdf, svg, ...); ValueError naming the
    file when matplotlib cannot write that kind."""
    fmt = Path(path).suffix[1:].lower()
    formats = FigureCanvasAgg.get_supported_filetypes()
    if fmt not in formats:
        raise ValueError(f"{path}: cannot write {'.' + fmt if fmt else 'an image without a suffix'};"
                         f" the image kinds are {', '.join('.' + f for f in sorted(formats))}")
    return fmt


def _save(fig, path):
    """Write `fig` to `path` atomically (a full disk leaves the old file, not an empty one)."""
    path = Path(path)
    fmt = image_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: fig.savefig(f, dpi=100, format=fmt))
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


def plot_manifold(model, image_shape, path, n=15, label=None):
    """Decoded means over an n x n grid of Gaussian quantiles of a 2-D latent space.

    label: the class a conditional model decodes the whole grid with (its "style" space for
    that class); None for a plain model.
    """
    if model.latent_dim != 2:
        raise ValueError(f"the manifold figure needs latent_dim 2, the model has {model.latent_dim}")
    z = gaussian_grid(n).astype(model.dtype)
    decoded = model.decode(z) if label is None else model.decode(z, int(label))
    grid = tile(as_images(decoded, image_shape), n, pad=1)
    fig = _new_figure(7, 7)
    title = "decoded latent grid (z1 left to right, z2 bottom to top, 5%..95% quantiles)"
    if label is not None:
        title = f"class {label}: " + title
    _show_grid(fig.subplots(), grid, title)
    fig.tight_layout()
    return _save(fig, path)


def plot_latent(mu, labels, path, title="test set in latent space"):
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
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    fig.tight_layout()
    return _save(fig, path)


def plot_interpolation(model, x_a, x_b, image_shape, path, n_steps=10, label=None):
    """Originals at both ends, the decoded straight line between their posterior means inside.

    label: for a conditional model, the class both examples belong to; they are encoded
    and the line decoded with it. x_a, x_b are the image rows, without label columns.
    """
    pair = np.stack([x_a, x_b])
    if label is None:
        mu, _ = model.encode(pair.astype(model.dtype))
    else:
        mu, _ = model.encode(model.join(pair, np.array([label, label])))
    z = interpolate(mu[0], mu[1], n_steps).astype(model.dtype)
    decoded = model.decode(z) if label is None else model.decode(z, int(label))
    strip = np.concatenate([as_images(x_a[None], image_shape), as_images(decoded, image_shape),
                            as_images(x_b[None], image_shape)])
    grid = tile(strip, strip.shape[0])
    fig = _new_figure(strip.shape[0] * 0.8, 1.4)
    title = "original | decoded interpolation of the means | original"
    if label is not None:
        title = f"class {label}: " + title
    _show_grid(fig.subplots(), grid, title)
    fig.tight_layout()
    return _save(fig, path)


def class_samples(model, n_cols, rng=None):
    """(n_classes * n_cols, D) prior samples of a conditional model, class by class:
    rows c * n_cols ... (c + 1) * n_cols - 1 are `model.sample(n_cols, y=c)`."""
    return np.concatenate([model.sample(n_cols, y=c, rng=rng) for c in range(model.n_classes)])


def plot_class_rows(images, image_shape, path, n_cols, title=None, row_labels=None,
                    ylabel="class"):
    """A grid with one row per class, each row labelled at its left by its class.

    images: (C * n_cols, D) rows in class order (as `class_samples` returns them).
    row_labels, ylabel: the rows' labels (default their numbers) and the axis name.
    """
    imgs = as_images(images, image_shape)
    n_rows = -(-imgs.shape[0] // n_cols)
    row_labels = [str(c) for c in range(n_rows)] if row_labels is None else list(row_labels)
    grid = tile(imgs, n_cols)
    images_width = 0.6 * n_cols
    margin = 1.0 + 0.08 * max(0, max(map(len, row_labels[:n_rows]), default=0) - 2)  # the labels
    fig = _new_figure(images_width + margin, images_width * grid.shape[0] / grid.shape[1] + 0.7)
    ax = fig.subplots()
    ax.imshow(grid, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    h = image_shape[0] + 1  # one image and its padding
    ax.set_yticks([r * h + (image_shape[0] - 1) / 2 for r in range(n_rows)], row_labels[:n_rows])
    ax.set_xticks([])
    ax.tick_params(axis="y", length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if ylabel:
        ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def plot_classes(model, image_shape, path, n_cols=10, rng=None):
    """classes.png: one row per class of a conditional model, n_cols prior samples each
    (decoder means of z ~ N(0, I) with that label), labelled by class."""
    return plot_class_rows(class_samples(model, n_cols, rng), image_shape, path, n_cols,
                           title=f"samples from the prior, one row per class "
                                 f"({n_cols} draws of z each, decoder means)")


def plot_kl_per_dimension(kl, activity, path, history=None, threshold=ACTIVE_THRESHOLD,
                          mi_rows=None):
    """kl_per_dimension.png: each latent dimension's held-out KL, active ones coloured.

    Bars sorted by KL, largest first, each labelled with its dimension's index; blue when
    the dimension is active (its activity Var_x(mu_j) > threshold), grey otherwise. With a
    `history` holding the per-epoch diagnostics, a second panel shows the active units and
    I_q(x; z) per epoch, with log N, the ceiling of the estimate on `mi_rows` = N rows.

    Parameters
    ----------
    kl : array, shape (J,)
        npvae.kl_per_dimension on the held-out rows.
    activity : array, shape (J,)
        npvae.active_units' activity on the same rows.
    path : path
        Where to write the figure.
    history : History, optional
        Its val_active_units and val_mutual_info, when any is known, get the second panel.
    threshold : float
        The activity above which a dimension counts as active.
    mi_rows : int, optional
        The rows the I_q estimates were made on (draws the log N line).
    """
    kl, activity = np.asarray(kl, dtype=np.float64), np.asarray(activity, dtype=np.float64)
    J = kl.size
    active = activity > threshold
    order = dims_by_kl(kl)
    per_epoch = history is not None and len(history.epoch) and np.isfinite(
        np.append(history.val_active_units, history.val_mutual_info)).any()
    fig = _new_figure(11 if per_epoch else 6.5, 4.2)
    axes = fig.subplots(1, 2 if per_epoch else 1, squeeze=False)[0]
    ax = axes[0]
    ax.bar(np.arange(J), kl[order], color=np.where(active[order], "C0", "0.65"))
    ax.legend(handles=[Patch(color="C0", label=f"active: Var_x E[z_j|x] > {threshold:g}"),
                       Patch(color="0.65", label="inactive")], fontsize=8, loc="upper right")
    if J <= 40:
        ax.set_xticks(np.arange(J), [str(j) for j in order], fontsize=7 if J > 20 else 9)
    else:
        ax.set_xticks([])
    top = max(float(kl.max()), 1e-12) if J else 1.0
    ax.set(xlabel="latent dimension j (sorted by KL)" if J <= 40 else
           f"the {J} latent dimensions, sorted by KL", ylabel="KL(q(z_j|x) || N(0,1)), nats",
           ylim=(0, 1.3 * top),  # room for the legend above the bars
           title=f"held-out KL per dimension: {int(active.sum())} of {J} active")
    if per_epoch:
        ax_units = axes[1]
        epochs = np.asarray(history.epoch)
        ax_units.plot(epochs, np.asarray(history.val_active_units, dtype=np.float64),
                      "o-", color="C0", markersize=3, label="active units")
        ax_units.set(xlabel="epoch", ylabel="active units", ylim=(-0.05 * J, 1.3 * J),
                     title="held-out active units and I_q(x; z) per epoch")
        ax_units.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax_mi = ax_units.twinx()
        mi = np.asarray(history.val_mutual_info, dtype=np.float64)
        ax_mi.plot(epochs, mi, color="C1", label="I_q(x; z)")
        ceiling = np.log(mi_rows) if mi_rows else np.nan
        if mi_rows:
            ax_mi.axhline(ceiling, color="C1", linestyle=":", label=f"its ceiling log {mi_rows}")
        known = np.append(mi, ceiling)
        known = known[np.isfinite(known)]
        mi_top = max(float(known.max()), 1e-12) if known.size else 1.0
        ax_mi.set(ylabel="I_q(x; z), nats", ylim=(-0.05 * mi_top, 1.3 * mi_top))
        handles = [h for a in (ax_units, ax_mi) for h in a.get_legend_handles_labels()[0]]
        ax_mi.legend(handles, [h.get_label() for h in handles], fontsize=8, loc="upper center",
                     ncol=3)
    fig.tight_layout()
    return _save(fig, path)


def _nats(v):
    """A KL for a label: two decimals, or two significant digits below 0.01 nats."""
    return f"{v:.2f}" if v >= 0.01 or v == 0 else f"{v:.1e}"


def plot_traversals(model, x0, image_shape, path, dims, kl, n_cols=9, label=None):
    """traversals.png: one row per latent dimension in `dims`, sweeping that coordinate.

    x0 is encoded to its posterior mean mu; row r decodes mu with coordinate dims[r]
    replaced by each of the N(0, 1) quantiles at 5% ... 95% (n_cols of them, left to
    right), so a row shows what that dimension alone does (`traversal_codes`).

    Parameters
    ----------
    model : VAE or ConditionalVAE
        A model whose prior over z is N(0, I).
    x0 : array, shape (D,)
        The example, without label columns.
    image_shape : tuple of int
        (H, W) of one image.
    path : path
        Where to write the figure.
    dims : sequence of int
        The dimensions to traverse, one row each, top to bottom.
    kl : array, shape (J,)
        Each dimension's held-out KL, shown beside its row.
    n_cols : int
        The values per row.
    label : int, optional
        For a conditional model, x0's class: it is encoded and decoded with it.
    """
    x0 = np.asarray(x0)[None]
    if label is None:
        mu, _ = model.encode(x0.astype(model.dtype))
    else:
        mu, _ = model.encode(model.join(x0, np.array([label])))
    codes = traversal_codes(mu[0], dims, normal_quantiles(n_cols)).astype(model.dtype)
    decoded = model.decode(codes) if label is None else model.decode(codes, int(label))
    title = ("a held-out example's posterior mean; row z_j sets coordinate j\n"
             f"to the {n_cols} N(0,1) quantiles 5%..95% (largest KL first)")
    if label is not None:
        title = f"class {label}: " + title
    return plot_class_rows(decoded, image_shape, path, n_cols, title=title,
                           row_labels=[f"z{j}  KL {_nats(kl[j])}" for j in dims], ylabel=None)


def pick_pair(mu, n_candidates=200):
    """Indices (0, j) of two examples to interpolate between: example 0 and, among the first
    n_candidates, the one whose posterior mean lies farthest from it (a long, varied path)."""
    mu = np.asarray(mu, dtype=np.float64)[:n_candidates]
    if mu.shape[0] < 2:
        return 0, 0
    return 0, int(np.argmax(np.sum((mu - mu[0]) ** 2, axis=1)))


def draw_run_figures(model, x, y, image_shape, history, folder, seed=0, n_show=20,
                     n_latent=2000, n_traversed=10):
    """Draw every figure of a run into `folder`; returns (written paths, notes on skipped ones).

    x, y: held-out examples and labels (the first n_show are reconstructed, the first
    n_latent placed in the latent scatter; all of them give the KL per dimension). Image
    figures need `image_shape`; for flat data they are skipped with a note, and the
    manifold needs latent_dim 2. The traversals start from the first held-out example and
    show the n_traversed dimensions of largest KL.

    For a conditional model x holds the joined rows [x | onehot(y)]; the run also gets
    classes.png (one row of prior samples per class), the manifold is decoded for class 0,
    and the interpolation runs between two held-out examples of one class, decoded with it;
    the traversals encode and decode the first example with its own label.

    A HierarchicalVAE (a model with `latent_dims`) gets neither the KL per dimension nor
    the traversals, with a note: its z1, what encode returns and decode takes, has the
    prior p(z1|z2), not N(0, I), so KL(q(z1_j|x) || N(0, 1)) is no part of its ELBO and
    the N(0, 1) quantiles are not its prior's.
    """
    folder = Path(folder)
    conditional = hasattr(model, "n_classes")
    hierarchical = hasattr(model, "latent_dims")
    written, notes = [], []
    if history is not None and len(history.epoch):
        written.append(plot_losses(history, folder / "loss.png"))
    mu, _ = model.encode(x[:n_latent])
    written.append(plot_latent(mu, y[:n_latent], folder / "latent.png",
                               title="test set in latent space (means of q(z|x,y))"
                               if conditional else "test set in latent space"))
    if hierarchical:
        notes.append("a hierarchical model's z1 has the prior p(z1|z2), not N(0, I): the KL "
                     "per dimension and traversal figures skipped")
    else:
        kl = kl_per_dimension(model, x)
        _, activity = active_units(model, x, threshold=ACTIVE_THRESHOLD)
        written.append(plot_kl_per_dimension(kl, activity, folder / "kl_per_dimension.png",
                                             history, mi_rows=min(len(x), DIAGNOSTIC_ROWS)))
    if image_shape is None:
        notes.append("the data has no image shape: reconstructions, samples, manifold"
                     f"{', classes' if conditional else ''}, interpolation and traversal "
                     "figures skipped")
        return written, notes
    pixels = x[:, :model.input_dim]  # a conditional run's x carries label columns too
    written.append(plot_reconstructions(pixels[:n_show], model.reconstruct(x[:n_show]), image_shape,
                                        folder / "reconstructions.png"))
    rng = np.random.default_rng(seed)
    written.append(plot_images(model.sample(64, rng=rng), image_shape, folder / "samples.png",
                               title="samples from the prior, classes drawn uniformly (decoder means)"
                               if conditional else "samples from the prior (decoder means)"))
    if conditional:
        written.append(plot_classes(model, image_shape, folder / f"{CLASSES_FIGURE}.png", rng=rng))
    if model.latent_dim == 2:
        # A conditional model decodes the whole grid with one label, class 0.
        written.append(plot_manifold(model, image_shape, folder / "manifold.png",
                                     label=0 if conditional else None))
    else:
        notes.append(f"latent_dim is {model.latent_dim}: the manifold figure needs 2")
    label = None
    if conditional:
        # Interpolate within the first held-out example's class, decoding with that label.
        label = int(y[0])
        same = np.flatnonzero(y[:len(mu)] == label)
        a, j = pick_pair(mu[same])
        a, b = same[a], same[j]
    else:
        a, b = pick_pair(mu)
    written.append(plot_interpolation(model, pixels[a], pixels[b], image_shape,
                                      folder / "interpolation.png", label=label))
    if not hierarchical:
        dims = dims_by_kl(kl)[:n_traversed]
        written.append(plot_traversals(model, pixels[0], image_shape, folder / "traversals.png",
                                       dims, kl, label=label))
    return written, notes
