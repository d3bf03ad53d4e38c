"""`npvae train --conditional` end to end on the built-in digits: the run folder and its
classes figure, every inspecting subcommand on a conditional run, bit-identical resume, and
the usage errors of a dataset without labels."""
import json

import numpy as np
import pytest

import npvae
from npvae.app import runs
from npvae.app.cli import main
from npvae.app.rundata import load_run_data
from npvae.models.conditional import ConditionalVAE
from npvae.app.plots import CLASSES_FIGURE, FIGURE_NAMES
from test_plots import assert_png

SMALL = ["--hidden", "24", "--batch-size", "128", "--quiet"]


def run_cli(capsys, *argv):
    """(exit status, stdout, stderr) of `npvae argv...` run in this process."""
    try:
        status = main([str(a) for a in argv])
    except SystemExit as exit_:  # argparse: bad flags
        status = exit_.code
    out, err = capsys.readouterr()
    return status, out, err


def assert_usage_error(status, err, *fragments):
    assert status == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, err


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One conditional run (latent_dim 2, so it gets the manifold too) for read-only tests."""
    path = tmp_path_factory.mktemp("cvae") / "run"
    assert main(["train", "--conditional", "--out", str(path), "--epochs", "3", *SMALL]) == 0
    return path


def _held_out(run_dir, model):
    """The run's held-out images joined with their labels, as the model reads them."""
    data = load_run_data(runs.read_run_config(run_dir))
    return model.join(data.x_val, data.y_val), data


def test_train_writes_a_conditional_run_with_the_classes_figure(run):
    config = json.loads((run / "config.json").read_text())
    assert config["conditional"] is True and config["hidden"] == [24]
    model = npvae.load(run / "model.npz")
    assert isinstance(model, ConditionalVAE)
    assert (model.input_dim, model.n_classes, model.latent_dim) == (64, 10, 2)
    for name in (*FIGURE_NAMES, CLASSES_FIGURE):
        assert_png(run / "figures" / f"{name}.png")
    assert isinstance(npvae.load(run / "best.npz"), ConditionalVAE)


def test_evaluate_joins_the_held_out_data_with_their_labels(run, capsys):
    status, out, err = run_cli(capsys, "evaluate", run, "--k", "4", "--json")
    assert status == 0, err
    result = json.loads(out)
    model = npvae.load(run / "model.npz")
    xa, data = _held_out(run, model)
    loss, rec, kl = npvae.negative_elbo(model, xa)
    assert result["examples"] == data.x_val.shape[0]
    assert result["negative_elbo"] == pytest.approx(loss) and result["kl"] == pytest.approx(kl)
    assert result["log_likelihood"] > -loss - 1.0


def test_sample_draws_one_row_per_class_or_one_class(run, tmp_path, capsys):
    model = npvae.load(run / "model.npz")
    status, out, err = run_cli(capsys, "sample", run, "--out", tmp_path / "all.png",
                               "--npy", tmp_path / "all.npy", "--seed", "4")
    assert status == 0, err
    assert_png(tmp_path / "all.png")
    rng = np.random.default_rng(4)  # default: 10 per class, class by class
    expected = np.concatenate([model.sample(10, y=c, rng=rng) for c in range(10)])
    np.testing.assert_array_equal(np.load(tmp_path / "all.npy"), expected)

    status, _, err = run_cli(capsys, "sample", run, "--label", "3", "-n", "5",
                             "--out", tmp_path / "three.png", "--npy", tmp_path / "three.npy")
    assert status == 0, err
    assert_png(tmp_path / "three.png")
    np.testing.assert_array_equal(np.load(tmp_path / "three.npy"),
                                  model.sample(5, y=3, rng=np.random.default_rng(0)))

    status, _, err = run_cli(capsys, "sample", run, "--label", "10")
    assert_usage_error(status, err, "--label 10", "0..9")


def test_label_needs_a_conditional_model(tmp_path, capsys):
    npvae.save(npvae.VAE(16, 2, hidden=(4,)), tmp_path / "plain.npz")
    status, _, err = run_cli(capsys, "sample", tmp_path / "plain.npz", "--label", "1",
                             "--image-shape", "4x4")
    assert_usage_error(status, err, "--label needs a conditional model")


def test_reconstruct_plot_and_gradcheck_on_a_conditional_run(run, tmp_path, capsys):
    status, _, err = run_cli(capsys, "reconstruct", run, "-n", "5", "--out", tmp_path / "r.png")
    assert status == 0, err
    assert_png(tmp_path / "r.png")

    for png in (run / "figures").iterdir():
        png.unlink()
    status, out, err = run_cli(capsys, "plot", run, "--best")
    assert status == 0, err
    assert "classes.png" in out
    for name in (*FIGURE_NAMES, CLASSES_FIGURE):
        assert_png(run / "figures" / f"{name}.png")

    status, out, _ = run_cli(capsys, "gradcheck", run, "--max-entries", "3", "--batch", "3")
    assert status == 0 and "ConditionalVAE" in out and "all passed" in out
    status, out, _ = run_cli(capsys, "gradcheck", "--conditional", "--hidden", "4",
                             "--latent-dim", "3", "--max-entries", "3")
    assert status == 0 and "ConditionalVAE" in out and "all passed" in out
    status, _, err = run_cli(capsys, "gradcheck", run, "--conditional")
    assert_usage_error(status, err, "--conditional has no effect")


def test_config_key_and_interrupted_resume_are_bit_identical(tmp_path, monkeypatch, capsys, stop_at):
    # --binarize dynamic: the label columns (exactly 0 or 1) must come through every draw.
    flags = ["--epochs", "2", "--seed", "5", "--batch-size", "256", "--hidden", "16",
             "--latent-dim", "3", "--binarize", "dynamic", "--quiet", "--no-figures"]
    (tmp_path / "c.json").write_text(json.dumps({"conditional": True}))
    status, _, err = run_cli(capsys, "train", "--config", tmp_path / "c.json",
                             "--out", tmp_path / "whole", *flags)
    assert status == 0, err

    # 6 steps per epoch on 1,438 digits; the 4th question comes after step 4 of epoch 1.
    stop_at(4)
    status, _, err = run_cli(capsys, "train", "--conditional", "--out", tmp_path / "cut", *flags)
    assert status == 130 and "epoch 1 after step 4" in err
    monkeypatch.undo()
    status, _, err = run_cli(capsys, "train", "--resume", tmp_path / "cut", "--no-conditional")
    assert_usage_error(status, err, "--conditional cannot change")
    status, _, err = run_cli(capsys, "train", "--resume", tmp_path / "cut", "--quiet", "--no-figures")
    assert status == 0, err

    for name in ("model.npz", "best.npz"):
        whole, cut = npvae.load(tmp_path / "whole" / name), npvae.load(tmp_path / "cut" / name)
        assert isinstance(cut, ConditionalVAE)
        np.testing.assert_array_equal(cut.flat_params, whole.flat_params)
    drop_seconds = lambda text: [line.rsplit(",", 1)[0] for line in text.splitlines()]
    assert drop_seconds((tmp_path / "cut" / "metrics.csv").read_text()) == \
        drop_seconds((tmp_path / "whole" / "metrics.csv").read_text())


def test_a_dataset_without_labels_is_a_usage_error(tmp_path, capsys):
    np.save(tmp_path / "noise.npy", np.random.default_rng(0).random((40, 16)))
    status, _, err = run_cli(capsys, "train", "--conditional", "--dataset", tmp_path / "noise.npy",
                             "--out", tmp_path / "r", "--epochs", "1", "--quiet")
    assert_usage_error(status, err, "noise.npy", "has no labels", "conditional VAE")
    assert not (tmp_path / "r").exists()

    x = np.random.default_rng(1).random((30, 4))
    y = np.array([0, 1, -1] * 10)
    np.savez(tmp_path / "some.npz", x_train=x, y_train=y)
    status, _, err = run_cli(capsys, "train", "--conditional", "--dataset", tmp_path / "some.npz",
                             "--epochs", "1", "--quiet", "--out", tmp_path / "r2")
    assert_usage_error(status, err, "without a label (-1)")


def test_a_bad_conditional_setting_names_the_key(tmp_path, capsys):
    (tmp_path / "c.json").write_text(json.dumps({"conditional": "yes"}))
    status, _, err = run_cli(capsys, "train", "--config", tmp_path / "c.json")
    assert_usage_error(status, err, "conditional", "true or false")
