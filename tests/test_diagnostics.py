"""Collapse diagnostics: the per-epoch active units and I_q(x; z) in the History, their
columns in metrics.csv and checkpoints (old files without them still read), and the KL per
dimension and latent traversal figures."""
import math

import matplotlib.image
import numpy as np
import pytest

import npvae
from npvae.app import plots, runs
from npvae.app.checkpoints import load_checkpoint, save_checkpoint
from npvae.app.config import TrainConfig, UsageError
from npvae.data import load_dataset
from npvae.train import DIAGNOSTIC_ROWS, FitState, History, fit, latent_diagnostics

OLD_HEADER = "epoch,train_loss,train_rec,train_kl,val_loss,val_rec,val_kl,seconds"


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


def _bounds_hold(history, latent_dim, n_val):
    units, info = history.val_active_units, history.val_mutual_info
    assert all(isinstance(u, int) and 0 <= u <= latent_dim for u in units), units
    # Every term of the estimate is <= log N, so the estimate is too; in expectation >= 0.
    assert all(-0.05 <= i <= math.log(min(n_val, DIAGNOSTIC_ROWS)) + 1e-9 for i in info), info


def test_a_fit_records_them_on_the_held_out_rows(digits):
    x, xv = digits.x_train[:400], digits.x_test[:120]
    # float64, so that encoding in blocks of another size than the fit's rounds alike (in
    # float32 a BLAS product's rounding depends on the block: 1e-9 apart in I_q here)
    model = npvae.VAE(64, 3, hidden=(16,), dtype=np.float64, seed=0)
    h = fit(model, x, xv, epochs=2, batch_size=50, seed=4)
    assert len(h.val_active_units) == len(h.val_mutual_info) == 2
    _bounds_hold(h, 3, 120)
    # The last epoch's numbers are the public functions' on x_val (not x_train), with the
    # fit's seed: computed again from the trained model they agree.
    assert h.val_active_units[-1] == npvae.active_units(model, xv, threshold=0.01)[0]
    assert h.val_mutual_info[-1] == pytest.approx(
        npvae.mutual_information(model, xv, seed=4)[0], rel=1e-12)


def test_without_held_out_data_they_are_nan(digits):
    h = fit(npvae.VAE(64, 2, hidden=(8,)), digits.x_train[:100], epochs=1, batch_size=50)
    assert math.isnan(h.val_active_units[0]) and math.isnan(h.val_mutual_info[0])


def test_the_information_is_estimated_on_the_first_rows(digits):
    model = npvae.VAE(64, 3, hidden=(16,), seed=1)
    x = model.check_input(digits.x_test[:60])
    _, info = latent_diagnostics(model, x, seed=2, n_rows=20)
    assert info == pytest.approx(npvae.mutual_information(model, x[:20], seed=2)[0], rel=1e-12)
    assert info != pytest.approx(npvae.mutual_information(model, x[:40], seed=2)[0], rel=1e-3)


def test_conditional_and_hierarchical_models(digits):
    cvae = npvae.ConditionalVAE(64, 10, latent_dim=3, hidden=(16,), seed=0)
    xa = cvae.join(digits.x_train[:300], digits.y_train[:300])
    xva = cvae.join(digits.x_test[:80], digits.y_test[:80])
    _bounds_hold(fit(cvae, xa, xva, epochs=2, batch_size=50), 3, 80)
    # The hierarchical model's encode gives q(z1|x): at most m1 = 4 active units.
    hvae = npvae.HierarchicalVAE(64, (4, 2), hidden=((16,), (8,)), seed=0)
    h = fit(hvae, digits.x_train[:300], digits.x_test[:80], epochs=2, batch_size=50)
    _bounds_hold(h, 4, 80)
    assert h.val_active_units[-1] == npvae.active_units(hvae, digits.x_test[:80])[0]


def test_an_encoder_that_ignores_its_input_has_no_active_units_and_no_information(digits):
    model = npvae.VAE(64, 4, hidden=(16,), seed=0)
    model.params["encoder.out.W"][...] = 0  # mu and logvar are the bias: the same for every x
    n_active, info = latent_diagnostics(model, model.check_input(digits.x_test), seed=0)
    assert n_active == 0 and abs(info) < 1e-9


def test_a_trained_model_has_active_units_and_information(digits):
    model = npvae.VAE(64, 4, hidden=(32,), seed=0)
    _, untrained = latent_diagnostics(model, model.check_input(digits.x_test), seed=0)
    h = fit(model, digits.x_train, digits.x_test, epochs=10, batch_size=64,
            optimizer=npvae.Adam(lr=3e-3))
    # The random encoder's means already move with x (0.23 nats); training tells the
    # examples apart far better (1.7 nats of the log 359 = 5.9 possible).
    assert h.val_active_units[-1] >= 2 and h.val_mutual_info[-1] > max(1.0, 3 * untrained)


# ------------------------------------------------------------------ metrics.csv and checkpoints


def _history():
    h = History()
    h.append(epoch=1, train_loss=3.5, train_rec=3.0, train_kl=0.5, val_loss=4.0, val_rec=3.25,
             val_kl=0.75, val_active_units=3, val_mutual_info=1.5, seconds=0.125)
    h.append(epoch=2, train_loss=3.0, train_rec=2.5, train_kl=0.5, val_loss=math.nan,
             val_rec=math.nan, val_kl=math.nan, val_active_units=math.nan,
             val_mutual_info=math.nan, seconds=0.25)
    return h


def test_metrics_csv_round_trip_with_the_new_columns(tmp_path):
    runs.write_metrics(tmp_path, _history())
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    header = lines[0].split(",")
    assert "val_active_units" in header and "val_mutual_info" in header
    first = dict(zip(header, lines[1].split(",")))
    second = dict(zip(header, lines[2].split(",")))
    assert first["val_active_units"] == "3" and second["val_active_units"] == "nan"
    back = runs.read_metrics(tmp_path)
    assert back.val_active_units[0] == 3 and isinstance(back.val_active_units[0], int)
    assert back.val_mutual_info[0] == 1.5
    assert math.isnan(back.val_active_units[1]) and math.isnan(back.val_mutual_info[1])


def test_an_older_metrics_csv_reads_with_nan(tmp_path):
    (tmp_path / "metrics.csv").write_text(
        OLD_HEADER + "\n1,3.5,3.0,0.5,4.0,3.25,0.75,0.125\n2,3.0,2.5,0.5,3.5,3.0,0.5,0.25\n")
    back = runs.read_metrics(tmp_path)
    assert back.epoch == [1, 2] and back.val_loss == [4.0, 3.5] and back.seconds == [0.125, 0.25]
    assert len(back.val_active_units) == len(back.val_mutual_info) == 2
    assert all(math.isnan(v) for v in back.val_active_units + back.val_mutual_info)
    # It writes back with the new columns, NaN there.
    runs.write_metrics(tmp_path, back)
    assert runs.read_metrics(tmp_path).val_loss == [4.0, 3.5]


def test_a_metrics_csv_missing_another_column_is_refused(tmp_path):
    (tmp_path / "metrics.csv").write_text(OLD_HEADER.replace(",val_kl", "") +
                                          "\n1,3.5,3.0,0.5,4.0,3.25,0.125\n")
    with pytest.raises(UsageError, match="lacks the column val_kl"):
        runs.read_metrics(tmp_path)


def test_history_from_an_older_dict_fills_nan():
    d = {k: v for k, v in _history().as_dict().items() if k not in History.LATER_COLUMNS}
    h = History.from_dict(d)
    assert len(h.val_active_units) == len(h.val_mutual_info) == len(h) == 2
    assert all(math.isnan(v) for v in h.val_active_units + h.val_mutual_info)


def _checkpointed_fit(tmp_path, monkeypatch=None):
    """A 1-epoch fit saved as a checkpoint (without the new History keys when monkeypatch
    is given, as a checkpoint written before they existed)."""
    rng = np.random.default_rng(0)
    x, xv = rng.random((60, 6)).astype(np.float32), rng.random((20, 6)).astype(np.float32)
    cfg = TrainConfig(hidden=[5], latent_dim=2, seed=3).check()
    model, opt, state = cfg.build_model(6), cfg.build_optimizer(), FitState.start(3)
    fit(model, x, xv, epochs=1, batch_size=16, optimizer=opt, seed=3, state=state)
    if monkeypatch is not None:
        full = History.as_dict
        monkeypatch.setattr(History, "as_dict", lambda self: {
            k: v for k, v in full(self).items() if k not in History.LATER_COLUMNS})
    save_checkpoint(tmp_path / "model.npz", model, opt, state, cfg)
    if monkeypatch is not None:
        monkeypatch.undo()
    return x, xv, state


def test_an_older_checkpoint_resumes_with_nan_for_its_epochs(tmp_path, monkeypatch):
    x, xv, _ = _checkpointed_fit(tmp_path, monkeypatch)
    ck = load_checkpoint(tmp_path / "model.npz")
    h = ck.state.history
    assert len(h) == 1 and math.isnan(h.val_active_units[0]) and math.isnan(h.val_mutual_info[0])
    h = fit(ck.model, x, xv, epochs=2, batch_size=16, optimizer=ck.optimizer, seed=3,
            state=ck.state)
    assert math.isnan(h.val_active_units[0]) and isinstance(h.val_active_units[1], int)
    assert math.isfinite(h.val_mutual_info[1]) and len(h.val_loss) == 2


def test_a_new_checkpoint_round_trips_the_columns(tmp_path):
    _, _, state = _checkpointed_fit(tmp_path)
    back = load_checkpoint(tmp_path / "model.npz").state.history
    assert back.as_dict() == state.history.as_dict()
    assert isinstance(back.val_active_units[0], int) and math.isfinite(back.val_mutual_info[0])


# ------------------------------------------------------------------ the figures


def test_traversal_codes_change_exactly_one_coordinate_per_row():
    z0 = np.array([0.3, -0.7, 1.1, 0.05, 2.5])
    dims, values = [3, 0, 4], [-1.5, 0.0, 0.8, 2.0]
    codes = plots.traversal_codes(z0, dims, values)
    assert codes.shape == (12, 5)
    for r, row in enumerate(codes):
        d, v = dims[r // 4], values[r % 4]
        assert row[d] == v
        assert np.array_equal(np.delete(row, d), np.delete(z0, d))


@pytest.mark.parametrize("z0,dims,fragment", [
    (np.zeros((2, 3)), [0], "z0"),
    (np.zeros(3), [3], "dims"),
    (np.zeros(3), [-1], "dims"),
    (np.zeros(3), [0.5], "dims"),
])
def test_traversal_codes_refuse_bad_input(z0, dims, fragment):
    with pytest.raises(ValueError, match=fragment):
        plots.traversal_codes(z0, dims, [0.0, 1.0])


def test_dims_by_kl_and_normal_quantiles():
    assert plots.dims_by_kl([0.5, 2.0, 0.0, 2.0]).tolist() == [1, 3, 0, 2]
    q = plots.normal_quantiles(3)
    assert np.allclose(q, [-1.6448536269514722, 0.0, 1.6448536269514722]) and q[1] == 0.0


def _assert_png(path):
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 20 and image.shape[1] > 20


@pytest.mark.parametrize("kind", ["vae", "conditional"])
def test_draw_run_figures_writes_both_figures(tmp_path, monkeypatch, digits, kind):
    if kind == "vae":
        model = npvae.VAE(64, 12, hidden=(16,), seed=0)
        x, xv = digits.x_train[:200], digits.x_test[:60]
    else:
        model = npvae.ConditionalVAE(64, 10, latent_dim=12, hidden=(16,), seed=0)
        x = model.join(digits.x_train[:200], digits.y_train[:200])
        xv = model.join(digits.x_test[:60], digits.y_test[:60])
    history = fit(model, x, xv, epochs=2, batch_size=50)
    traversed = {}
    draw = plots.plot_traversals

    def spy(model, x0, image_shape, path, dims, kl, **kw):
        traversed.update(x0=x0, dims=list(dims), kl=kl, **kw)
        return draw(model, x0, image_shape, path, dims, kl, **kw)

    monkeypatch.setattr(plots, "plot_traversals", spy)
    written, _ = plots.draw_run_figures(model, xv, digits.y_test[:60], (8, 8), history, tmp_path)
    names = {p.name for p in written}
    assert {"kl_per_dimension.png", "traversals.png"} <= names
    _assert_png(tmp_path / "kl_per_dimension.png")
    _assert_png(tmp_path / "traversals.png")
    # The first held-out example, its own class for a conditional model, the 10 of the 12
    # dimensions with the largest KL, largest first.
    kl = npvae.kl_per_dimension(model, xv)
    assert np.array_equal(traversed["x0"], xv[0, :64])
    assert traversed["label"] == (int(digits.y_test[0]) if kind == "conditional" else None)
    expected = sorted(range(12), key=lambda j: -kl[j])[:10]
    assert expected != list(range(10)) and traversed["dims"] == expected


def test_traversal_rows_decode_the_swept_codes(tmp_path, monkeypatch):
    model = npvae.VAE(16, 3, hidden=(8,), seed=0)
    x0 = np.random.default_rng(0).random(16).astype(np.float32)
    seen = {}
    monkeypatch.setattr(plots, "plot_class_rows",
                        lambda images, *a, **kw: seen.update(images=images))
    plots.plot_traversals(model, x0, (4, 4), tmp_path / "t.png", [2, 0], np.ones(3), n_cols=5)
    mu = model.encode(x0[None])[0][0]
    codes = plots.traversal_codes(mu, [2, 0], plots.normal_quantiles(5)).astype(np.float32)
    np.testing.assert_array_equal(seen["images"], model.decode(codes))


def test_flat_data_still_gets_the_kl_figure_and_a_hierarchical_model_a_note(tmp_path, digits):
    model = npvae.VAE(64, 3, hidden=(16,), seed=0)
    written, notes = plots.draw_run_figures(model, digits.x_test[:50], digits.y_test[:50], None,
                                            None, tmp_path / "flat")
    assert "kl_per_dimension" in {p.stem for p in written} and "traversals" not in {
        p.stem for p in written} and any("traversal" in n for n in notes)
    hvae = npvae.HierarchicalVAE(64, (3, 2), hidden=((8,), (4,)), seed=0)
    written, notes = plots.draw_run_figures(hvae, digits.x_test[:50], digits.y_test[:50], (8, 8),
                                            None, tmp_path / "h")
    stems = {p.stem for p in written}
    assert "kl_per_dimension" not in stems and "traversals" not in stems
    assert any("p(z1|z2)" in n for n in notes)


def test_the_kl_figure_without_per_epoch_values(tmp_path):
    h = _history()
    h.val_active_units, h.val_mutual_info = [math.nan] * 2, [math.nan] * 2
    _assert_png(plots.plot_kl_per_dimension([0.0, 0.0], [0.0, 0.0], tmp_path / "k.png", h))
