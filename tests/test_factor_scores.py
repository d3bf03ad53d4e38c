"""Runs on data with known factors report the disentanglement metrics: `npvae evaluate`
(text and JSON) and each sweep row; runs on other data report none."""
import json

import npvae
from npvae.app.cli import main
from npvae.app.sweep import sweep


def _train(tmp_path, dataset, name):
    out = tmp_path / name
    assert main(["train", "--dataset", dataset, "--latent-dim", "3", "--hidden", "16",
                 "--epochs", "1", "--batch-size", "256", "--out", str(out), "--quiet"]) == 0
    return out


def test_evaluate_reports_mig_and_the_factorvae_score_on_sprites(tmp_path, capsys):
    run = _train(tmp_path, "sprites", "s")
    capsys.readouterr()
    assert main(["evaluate", str(run), "--k", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    names = npvae.load_dataset("sprites").factor_names
    assert list(result["mig_per_factor"]) == list(names)
    assert 0 <= result["mig"] <= 1 and 0 <= result["factor_vae_score"] <= 1
    gaps = list(result["mig_per_factor"].values())
    assert abs(result["mig"] - sum(gaps) / len(gaps)) < 1e-12  # the mean of the factors' gaps
    assert main(["evaluate", str(run), "--k", "2"]) == 0
    text = capsys.readouterr().out
    assert f"MIG              {result['mig']:10.3f}" in text
    assert "chance 0.20" in text and "per factor: shape " in text


def test_evaluate_on_data_without_factors_reports_none(tmp_path, capsys):
    run = _train(tmp_path, "digits", "d")
    capsys.readouterr()
    assert main(["evaluate", str(run), "--k", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert "mig" not in result and "factor_vae_score" not in result


def test_sweep_rows_carry_the_metrics_for_sprites_only(tmp_path):
    spec = {"base": {"latent_dim": 3, "hidden": [16], "epochs": 1, "batch_size": 256},
            "grid": {"dataset": ["sprites", "digits"], "objective": ["tcvae"]}, "k": 2}
    rows = {row["dataset"]: row for row in sweep(spec, tmp_path / "sw", workers=1,
                                                 run_figures=False)}
    assert rows["sprites"]["status"] == "ok" and 0 <= rows["sprites"]["mig"] <= 1
    assert 0 <= rows["sprites"]["factor_vae_score"] <= 1
    assert rows["digits"]["status"] == "ok" and rows["digits"]["mig"] is None
    assert (tmp_path / "sw" / "figures" / "dataset.png").exists()
