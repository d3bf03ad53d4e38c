"""The npvae command line end to end, in temporary folders, on the built-in digits."""
import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import npvae
from npvae.app import runs
from npvae.app.cli import main
from npvae.app.rundata import load_run_data
from npvae.app.plots import FIGURE_NAMES
from test_plots import assert_png

SMALL = ["--hidden", "24", "--batch-size", "128", "--quiet"]


def run_cli(capsys, *argv):
    """(exit status, stdout, stderr) of `npvae argv...` run in this process."""
    try:
        status = main([str(a) for a in argv])
    except SystemExit as exit_:  # argparse: --help and bad flags
        status = exit_.code
    out, err = capsys.readouterr()
    return status, out, err


def assert_usage_error(status, err, fragment):
    assert status == 2, err
    assert fragment in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One trained run shared by the read-only tests."""
    path = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", "--out", str(path), "--epochs", "3", *SMALL]) == 0
    return path


def test_train_writes_the_whole_run_folder(run):
    for name in ("config.json", "metrics.csv", "model.npz", "best.npz"):
        assert (run / name).is_file(), name
    for name in FIGURE_NAMES:
        assert_png(run / "figures" / f"{name}.png")
    config = json.loads((run / "config.json").read_text())
    assert config["dataset"] == "digits" and config["hidden"] == [24] and config["epochs"] == 3
    with open(run / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    for r in rows:
        loss, rec, kl = float(r["val_loss"]), float(r["val_rec"]), float(r["val_kl"])
        assert np.isfinite([loss, rec, kl]).all() and abs(loss - (rec + kl)) < 1e-4
        assert float(r["seconds"]) > 0
    best = np.argmin([float(r["val_loss"]) for r in rows]) + 1
    _, _, extra = npvae.io.read_archive(run / "best.npz")
    assert int(extra["fit.epoch"]) == best


def test_evaluate_reads_the_checkpoint(run, capsys):
    status, out, _ = run_cli(capsys, "evaluate", run, "--k", "4", "--json")
    assert status == 0
    result = json.loads(out)
    model = npvae.load(run / "model.npz")
    data = load_run_data(runs.read_run_config(run))
    loss, rec, kl = npvae.negative_elbo(model, data.x_val)
    assert result["negative_elbo"] == pytest.approx(loss) and result["kl"] == pytest.approx(kl)
    assert result["log_likelihood"] > -loss - 1.0  # the k = 4 bound is near or above the ELBO
    status, out, _ = run_cli(capsys, "evaluate", run, "--k", "2", "--n", "10", "--best")
    assert status == 0 and "negative ELBO" in out and "log p(x)" in out and "10 held-out" in out


def test_sample_and_reconstruct_write_pngs(run, tmp_path, capsys):
    status, _, _ = run_cli(capsys, "sample", run, "-n", "9", "--out", tmp_path / "s.png",
                           "--npy", tmp_path / "s.npy")
    assert status == 0
    assert_png(tmp_path / "s.png")
    assert np.load(tmp_path / "s.npy").shape == (9, 64)
    status, _, _ = run_cli(capsys, "reconstruct", run / "model.npz", "-n", "5",
                           "--out", tmp_path / "r.png")
    assert status == 0
    assert_png(tmp_path / "r.png")


def test_sample_from_a_bare_model_file(tmp_path, capsys):
    npvae.save(npvae.VAE(12, 2, hidden=(4,)), tmp_path / "m.npz")
    status, _, err = run_cli(capsys, "sample", tmp_path / "m.npz", "--out", tmp_path / "s.png")
    assert_usage_error(status, err, "--image-shape")
    status, _, _ = run_cli(capsys, "sample", tmp_path / "m.npz", "--image-shape", "3x4",
                           "--out", tmp_path / "s.png", "-n", "6")
    assert status == 0
    assert_png(tmp_path / "s.png")
    status, _, err = run_cli(capsys, "sample", tmp_path / "m.npz", "--image-shape", "5x5")
    assert_usage_error(status, err, "25 pixels")
    status, _, err = run_cli(capsys, "evaluate", tmp_path / "m.npz")
    assert_usage_error(status, err, "--dataset")


def test_plot_redraws_the_figures(run, capsys):
    for name in FIGURE_NAMES:
        (run / "figures" / f"{name}.png").unlink()
    status, out, _ = run_cli(capsys, "plot", run)
    assert status == 0
    for name in FIGURE_NAMES:
        assert_png(run / "figures" / f"{name}.png")


def test_gradcheck_passes_on_a_configured_model_and_a_trained_run(run, capsys):
    status, out, _ = run_cli(capsys, "gradcheck", "--hidden", "6", "--latent-dim", "3",
                             "--max-entries", "4")
    assert status == 0, out
    assert "encoder.0.W" in out and "decoder.out.b" in out and "all passed" in out
    status, out, _ = run_cli(capsys, "gradcheck", run, "--max-entries", "3", "--batch", "2")
    assert status == 0 and "float64" in out
    status, _, err = run_cli(capsys, "gradcheck", run, "--hidden", "5")
    assert_usage_error(status, err, "--hidden has no effect")


def test_gradcheck_exits_1_when_a_gradient_is_wrong(monkeypatch, capsys):
    original = npvae.VAE._loss_and_grads

    def slightly_wrong(self, *args):
        parts = original(self, *args)
        self.flat_grads[:] *= 1.001
        return parts

    monkeypatch.setattr(npvae.VAE, "_loss_and_grads", slightly_wrong)
    status, out, _ = run_cli(capsys, "gradcheck", "--hidden", "4", "--max-entries", "3")
    assert status == 1 and "FAIL" in out


def test_gradcheck_rechecks_a_kink_at_a_smaller_step(monkeypatch, capsys):
    from npvae.gradcheck import GradCheckReport, ParamCheck

    steps = []

    def fake_check(model, x, *, h, **kwargs):
        steps.append(h)
        ok = h < 1e-5  # as if a ReLU kink lay within 1e-5 of the point
        return GradCheckReport([ParamCheck("encoder.out.b", (4,), 0.0 if ok else 1e-3, 1.0, 1.0,
                                           4, ok)])

    monkeypatch.setattr(npvae.gradcheck, "check_model_gradients", fake_check)
    status, out, _ = run_cli(capsys, "gradcheck", "--hidden", "4")
    assert status == 0 and steps == pytest.approx([1e-5, 1e-6])
    assert "FAIL" in out and "rechecking with step h 1e-06" in out and "kink" in out


def _params(path):
    return npvae.load(path).flat_params


def _losses(path):
    with open(path / "metrics.csv", newline="") as f:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(f)]


def test_interrupt_then_resume_is_bit_identical(tmp_path, monkeypatch, capsys, stop_at):
    flags = ["--epochs", "3", "--seed", "2", "--batch-size", "256", "--hidden", "24", "--quiet",
             "--no-figures", "--samples", "2"]
    assert run_cli(capsys, "train", "--out", tmp_path / "whole", *flags)[0] == 0

    # 6 steps per epoch; the 9th question comes after step 3 of epoch 2.
    stop_at(9)
    status, _, err = run_cli(capsys, "train", "--out", tmp_path / "cut", *flags)
    assert status == 130 and "--resume" in err and "epoch 2 after step 3" in err
    _, _, extra = npvae.io.read_archive(tmp_path / "cut" / "model.npz")
    assert (int(extra["fit.epoch"]), int(extra["fit.step"])) == (1, 3)
    monkeypatch.undo()

    status, _, err = run_cli(capsys, "train", "--resume", tmp_path / "cut", "--quiet", "--no-figures")
    assert status == 0, err
    assert np.array_equal(_params(tmp_path / "cut" / "model.npz"),
                          _params(tmp_path / "whole" / "model.npz"))
    assert _losses(tmp_path / "cut") == _losses(tmp_path / "whole")
    assert np.array_equal(_params(tmp_path / "cut" / "best.npz"),
                          _params(tmp_path / "whole" / "best.npz"))


def test_resume_with_more_epochs_equals_a_longer_run(tmp_path, capsys):
    flags = ["--hidden", "16", "--quiet", "--no-figures", "--batch-size", "256"]
    assert run_cli(capsys, "train", "--out", tmp_path / "long", "--epochs", "3", *flags)[0] == 0
    assert run_cli(capsys, "train", "--out", tmp_path / "short", "--epochs", "2", *flags)[0] == 0
    assert run_cli(capsys, "train", "--resume", tmp_path / "short", "--epochs", "3",
                   "--quiet", "--no-figures")[0] == 0
    assert np.array_equal(_params(tmp_path / "short" / "model.npz"),
                          _params(tmp_path / "long" / "model.npz"))
    assert json.loads((tmp_path / "short" / "config.json").read_text())["epochs"] == 3


def test_config_file_then_flags(tmp_path, capsys):
    (tmp_path / "c.json").write_text(json.dumps({"latent_dim": 3, "epochs": 5, "hidden": "12"}))
    status, _, err = run_cli(capsys, "train", "--config", tmp_path / "c.json", "--epochs", "1",
                             "--out", tmp_path / "r", "--quiet", "--threads", "1")
    assert status == 0, err
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert (config["latent_dim"], config["epochs"], config["hidden"]) == (3, 1, [12])
    # latent_dim 3: no manifold figure, and a note says why
    assert not (tmp_path / "r" / "figures" / "manifold.png").exists()
    assert (tmp_path / "r" / "figures" / "latent.png").exists()


def test_no_arguments_makes_a_timestamped_run_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    status, out, _ = run_cli(capsys, "train", "--epochs", "1", "--hidden", "8", "--no-figures")
    assert status == 0
    (folder,) = (tmp_path / "runs").iterdir()
    assert folder.name.startswith("digits-") and (folder / "model.npz").exists()
    assert "epoch 1/1" in out and "done" in out


def test_flat_user_data_skips_image_figures(tmp_path, capsys):
    x = np.random.default_rng(0).random((60, 5))
    np.save(tmp_path / "feat.npy", x)
    status, out, _ = run_cli(capsys, "train", "--dataset", tmp_path / "feat.npy", "--epochs", "1",
                             "--hidden", "4", "--out", tmp_path / "r", "--quiet")
    assert status == 0 and "note:" in out
    assert sorted(p.stem for p in (tmp_path / "r" / "figures").iterdir()) == [
        "kl_per_dimension", "latent", "loss"]


def test_divergence_exits_1_and_keeps_a_loadable_checkpoint(tmp_path, capsys):
    status, _, err = run_cli(capsys, "train", "--out", tmp_path / "d", "--lr", "1e6",
                             "--epochs", "2", "--hidden", "8", "--quiet")
    assert status == 1
    assert "diverged at epoch" in err and "step" in err and "10 times lower" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert np.isfinite(_params(tmp_path / "d" / "model.npz")).all()


@pytest.mark.parametrize("argv,fragment", [
    (["train", "--epochs", "0"], "--epochs"),
    (["train", "--hidden", "2,x"], "--hidden"),
    (["train", "--activation", "swish"], "--activation"),
    (["train", "--dataset", "no-such-set"], "no-such-set"),
    (["train", "--config", "missing.json"], "missing.json"),
    (["evaluate", "no-such-run"], "no-such-run"),
    (["plot", "."], "not a run folder"),
    (["train", "--resume", "no-such-run"], "no-such-run"),
])
def test_usage_errors_are_one_line_and_exit_2(argv, fragment, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    status, _, err = run_cli(capsys, *argv)
    assert_usage_error(status, err, fragment)


def test_bad_config_key_and_frozen_settings_on_resume(run, tmp_path, capsys):
    (tmp_path / "bad.json").write_text('{"hiden": [3]}')
    status, _, err = run_cli(capsys, "train", "--config", tmp_path / "bad.json")
    assert_usage_error(status, err, "'hiden'")
    status, _, err = run_cli(capsys, "train", "--resume", run, "--latent-dim", "4")
    assert_usage_error(status, err, "--latent-dim cannot change")
    status, _, err = run_cli(capsys, "train", "--out", run)
    assert_usage_error(status, err, "already holds run files")


@pytest.mark.parametrize("command", ["train", "evaluate", "sample", "reconstruct", "plot",
                                     "gradcheck", "sweep"])
def test_every_subcommand_has_help(command, capsys):
    status, out, _ = run_cli(capsys, command, "--help")
    assert status == 0 and f"npvae {command}" in out


def test_python_dash_m_and_real_ctrl_c(tmp_path):
    """A real SIGINT: the run stops, saves a checkpoint, says how to resume, exits 130."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "npvae", "train", "--out", str(tmp_path / "r"), "--epochs", "100000",
         "--hidden", "8", "--no-figures"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    deadline = time.monotonic() + 60
    while not (tmp_path / "r" / "metrics.csv").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "checkpoint saved" in err and "--resume" in err and "Traceback" not in err
    assert "epoch 1/100000" in out  # not a terminal: one line per epoch
    _, _, extra = npvae.io.read_archive(tmp_path / "r" / "model.npz")
    assert int(extra["fit.epoch"]) >= 1


def test_tcvae_refuses_batches_of_one_before_creating_the_run(tmp_path, capsys):
    out = tmp_path / "tc"
    status, _, err = run_cli(capsys, "train", "--objective", "tcvae", "--batch-size", "1",
                             "--epochs", "1", "--out", out, "--quiet")
    assert_usage_error(status, err, "--batch-size 1: the tcvae objective estimates q(z)")
    assert not out.exists()
