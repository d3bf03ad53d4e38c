"""Figures: the pure helpers' arithmetic, and every plot function writes a decodable PNG."""
import math
import subprocess
import sys

import matplotlib.image
import numpy as np
import pytest

import npvae
from npvae.app import plots
from npvae.train import History

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path):
    with open(path, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE, f"{path} is not a PNG"
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 20 and image.shape[1] > 20


def test_tile_places_images_row_major_with_padding():
    imgs = np.arange(3 * 2 * 2, dtype=float).reshape(3, 2, 2)
    grid = plots.tile(imgs, 2, pad=1, fill=-1)
    assert grid.shape == (5, 5)
    assert np.array_equal(grid[:2, :2], imgs[0]) and np.array_equal(grid[:2, 3:], imgs[1])
    assert np.array_equal(grid[3:, :2], imgs[2]) and np.all(grid[3:, 3:] == -1)
    assert np.all(grid[2] == -1) and np.all(grid[:, 2] == -1)


def test_gaussian_grid_uses_normal_quantiles():
    g = plots.gaussian_grid(3, 0.05, 0.95)
    q = 1.6448536269514722  # the 95% quantile of N(0, 1)
    assert g.shape == (9, 2)
    assert np.allclose(g[0], [-q, q]) and np.allclose(g[4], [0, 0]) and np.allclose(g[8], [q, -q])


def test_pca_2d_finds_the_long_axis():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 3)) * [0.1, 5.0, 1.0]
    proj, frac = plots.pca_2d(x)
    assert proj.shape == (500, 2) and frac[0] > 0.9 and frac[0] >= frac[1]
    assert np.allclose(np.abs(np.corrcoef(proj[:, 0], x[:, 1])[0, 1]), 1.0, atol=1e-3)


def test_interpolate_includes_both_ends():
    z = plots.interpolate([0.0, 2.0], [1.0, 0.0], 5)
    assert z.shape == (5, 2) and np.allclose(z[0], [0, 2]) and np.allclose(z[-1], [1, 0])
    assert np.allclose(z[2], [0.5, 1.0])


def test_pick_pair_takes_the_farthest_mean():
    mu = np.array([[0.0, 0.0], [1.0, 0.0], [-3.0, 1.0], [0.5, 0.5]])
    assert plots.pick_pair(mu) == (0, 2)


@pytest.fixture(scope="module")
def model():
    return npvae.VAE(16, 2, hidden=(8,), seed=0)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return rng.random((40, 16)).astype(np.float32), rng.integers(0, 10, 40)


def _history():
    h = History()
    for e in range(1, 4):
        h.append(epoch=e, train_loss=10.0 / e, train_rec=9.0 / e, train_kl=1.0 / e,
                 val_loss=11.0 / e, val_rec=10.0 / e, val_kl=1.0 / e, seconds=0.1)
    return h


def test_every_run_figure_is_a_png(tmp_path, model, data):
    x, y = data
    written, notes = plots.draw_run_figures(model, x, y, (4, 4), _history(), tmp_path)
    assert sorted(p.stem for p in written) == sorted(plots.FIGURE_NAMES)
    assert notes == []
    for path in written:
        assert_png(path)


def test_flat_data_skips_image_figures_with_a_note(tmp_path, model, data):
    x, y = data
    written, notes = plots.draw_run_figures(model, x, y, None, _history(), tmp_path)
    assert sorted(p.stem for p in written) == ["kl_per_dimension", "latent", "loss"]
    assert notes and "image shape" in notes[0]


@pytest.mark.parametrize("latent", [1, 5])
def test_latent_scatter_other_sizes_and_unknown_labels(tmp_path, latent):
    m = npvae.VAE(16, latent, hidden=(8,), seed=1)
    x = np.random.default_rng(1).random((30, 16)).astype(np.float32)
    mu, _ = m.encode(x)
    labels = np.where(np.arange(30) % 3 == 0, -1, np.arange(30) % 10)
    assert_png(plots.plot_latent(mu, labels, tmp_path / "latent.png"))
    written, notes = plots.draw_run_figures(m, x, labels, (4, 4), None, tmp_path / "f")
    assert "manifold" not in {p.stem for p in written} and any("manifold" in n for n in notes)


def test_manifold_needs_two_latent_dimensions(tmp_path):
    with pytest.raises(ValueError, match="latent_dim 2"):
        plots.plot_manifold(npvae.VAE(16, 3, hidden=()), (4, 4), tmp_path / "m.png")


def test_loss_plot_without_validation(tmp_path):
    h = _history()
    h.val_loss = [math.nan] * 3
    assert_png(plots.plot_losses(h, tmp_path / "loss.png"))


def test_importing_plots_leaves_the_matplotlib_backend_alone():
    code = ("import matplotlib; matplotlib.use('svg'); import npvae.app.plots; "
            "print(matplotlib.get_backend())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "svg"
