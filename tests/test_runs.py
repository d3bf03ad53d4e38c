"""Run folders: settings validation, metrics files, checkpoints that resume exactly
(npvae.app.config, runs and checkpoints)."""
import json
import math

import numpy as np
import pytest

import npvae
from npvae.app import runs
from npvae.app.checkpoints import load_checkpoint, save_checkpoint
from npvae.app.config import TrainConfig, UsageError
from npvae.train import FitState, History, fit


def test_defaults_validate_and_round_trip_through_json():
    cfg = TrainConfig().check()
    again = TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and cfg.dataset == "digits" and cfg.latent_dim == 2


@pytest.mark.parametrize("bad,fragment", [
    ({"hiden": [3]}, "unknown setting 'hiden'"),
    ({"latent_dim": 0}, "latent_dim"),
    ({"lr": -1.0}, "lr"),
    ({"beta": float("nan")}, "beta"),
    ({"activation": "swish"}, "activation"),
    ({"hidden": "3,x"}, "hidden"),
    ({"epochs": 2.5}, "epochs"),
    ({"test_fraction": 1.0}, "test_fraction"),
    ({"backend": "cuda"}, "backend"),
])
def test_bad_settings_name_the_problem(bad, fragment):
    with pytest.raises(UsageError, match=fragment):
        TrainConfig.from_dict(bad, source="f.json")


def test_metrics_csv_round_trip(tmp_path):
    h = History()
    h.append(epoch=1, train_loss=3.5, train_rec=3.0, train_kl=0.5, val_loss=4.0, val_rec=3.25,
             val_kl=0.75, seconds=0.125)
    h.append(epoch=2, train_loss=3.0, train_rec=2.5, train_kl=0.5, val_loss=math.nan,
             val_rec=math.nan, val_kl=math.nan, seconds=0.25)
    runs.write_metrics(tmp_path, h)
    back = runs.read_metrics(tmp_path)
    assert back.epoch == [1, 2] and back.train_loss == [3.5, 3.0] and math.isnan(back.val_loss[1])
    assert (tmp_path / "metrics.csv").read_text().splitlines()[0].split(",") == list(runs.METRIC_COLUMNS)


def test_checkpoint_restores_model_optimizer_and_fit_state(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((50, 6)).astype(np.float32)
    cfg = TrainConfig(hidden=[5], latent_dim=2, lr=2e-3, seed=3).check()
    model, opt = cfg.build_model(6), cfg.build_optimizer()
    state = FitState.start(cfg.seed)
    with pytest.raises(npvae.train.TrainingInterrupted):
        fit(model, x, x[:10], epochs=3, batch_size=16, optimizer=opt, seed=3, state=state,
            stop=lambda: state.epoch == 1)  # asked first at the end of epoch 1
    save_checkpoint(tmp_path / "model.npz", model, opt, state, cfg)
    ck = load_checkpoint(tmp_path / "model.npz")
    assert np.array_equal(ck.model.flat_params, model.flat_params)
    assert ck.optimizer.t == opt.t and ck.optimizer.lr == 2e-3
    for k, v in opt.state_dict().items():
        assert np.array_equal(ck.optimizer.state_dict()[k], v)
    assert (ck.state.epoch, ck.state.step, ck.state.order) == (1, 0, None)
    assert ck.state.history.as_dict() == state.history.as_dict()
    assert ck.config == cfg
    assert np.array_equal(ck.state.rng.random(3), state.rng.random(3))
    # An ordinary model loader reads a checkpoint too.
    assert np.array_equal(npvae.load(tmp_path / "model.npz").flat_params, model.flat_params)


def test_mid_epoch_checkpoint_keeps_the_permutation(tmp_path):
    x = np.random.default_rng(1).random((40, 4)).astype(np.float32)
    cfg = TrainConfig(hidden=[3], latent_dim=1).check()
    model, opt, state = cfg.build_model(4), cfg.build_optimizer(), FitState.start(0)
    with pytest.raises(npvae.train.TrainingInterrupted):
        fit(model, x, epochs=2, batch_size=8, optimizer=opt, state=state, stop=lambda: True)
    save_checkpoint(tmp_path / "c.npz", model, opt, state, cfg)
    ck = load_checkpoint(tmp_path / "c.npz")
    assert ck.state.step == 1 and np.array_equal(ck.state.order, state.order)
    assert ck.state.sums == state.sums


def test_a_plain_model_file_is_not_a_checkpoint(tmp_path):
    npvae.save(npvae.VAE(4, 1, hidden=()), tmp_path / "m.npz")
    with pytest.raises(UsageError, match="not a training checkpoint"):
        load_checkpoint(tmp_path / "m.npz")
    with pytest.raises(UsageError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.npz")


def test_new_run_dirs_never_collide(tmp_path):
    a = runs.new_run_dir(tmp_path, "digits", now=0)
    b = runs.new_run_dir(tmp_path, "digits", now=0)
    c = runs.new_run_dir(tmp_path, "/data/my.npz", now=0)
    assert a != b and a.name.startswith("digits-") and b.name.endswith("-2")
    assert c.name.startswith("my-")


def test_open_new_run_refuses_an_existing_run(tmp_path):
    path, lock = runs.open_new_run(tmp_path / "r", "digits")
    with lock:
        runs.write_config(path, TrainConfig())
    with pytest.raises(UsageError, match="already holds run files"):
        runs.open_new_run(tmp_path / "r", "digits")
    assert runs.read_run_config(tmp_path / "r") == TrainConfig().check()


def test_model_path_errors_name_the_path(tmp_path):
    with pytest.raises(UsageError, match="no such run folder"):
        runs.model_path(tmp_path / "nope")
    with pytest.raises(UsageError, match="holds no model.npz"):
        runs.model_path(tmp_path)


def test_set_backend_numpy_is_always_accepted():
    runs.set_backend(None)
    runs.set_backend("numpy")
