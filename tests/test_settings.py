"""The settings table: every constraint accepts a good value and refuses a bad one with one
message, and a bad value gets the same message from fit, from a config file and from a flag."""
import inspect
import json
import math
import re

import numpy as np
import pytest

import npvae
from npvae.app.cli import main
from npvae.app.config import TrainConfig, UsageError
from npvae.settings import (FIT_SETTINGS, SETTINGS, SettingError, check_combination,
                            check_setting, check_settings)

# setting: (a good value, what it normalises to, a bad value, the constraint's words)
CASES = {
    "dataset": ("mnist", "mnist", "", "a non-empty string"),
    "data_dir": (None, None, 3, "None or a non-empty string"),
    "binarize": ("dynamic", "dynamic", "always",
                 "one of 'none', 'static', 'threshold', 'dynamic'"),
    "test_fraction": (0, 0.0, 1.0, "a finite number in [0, 1)"),
    "hidden": ("256, 128", [256, 128], "2,x", "integers >= 1"),
    "activation": ("tanh", "tanh", "swish", "one of 'identity', 'relu', 'leaky_relu', 'tanh'"),
    "likelihood": ("gaussian-learned", "gaussian-learned", "poisson", "one of 'bernoulli'"),
    "latent_dim": (np.int64(8), 8, 0, "an integer >= 1"),
    "conditional": (np.bool_(True), True, 1, "true or false"),
    "objective": ("tcvae", "tcvae", "vae", "one of 'elbo', 'iwae', 'tcvae'"),
    "beta": (2, 2.0, -0.5, "a finite number >= 0"),
    "alpha": (0, 0.0, math.inf, "a finite number >= 0"),
    "gamma": (np.float64(3), 3.0, "1", "a finite number >= 0"),
    "free_bits": (np.float32(0.5), 0.5, math.nan, "a finite number >= 0"),
    "warmup_epochs": (0, 0, -1, "an integer >= 0"),
    "n_samples": (5, 5, 0, "an integer >= 1"),
    "epochs": (3, 3, 2.9, "an integer >= 1"),
    "batch_size": (64, 64, True, "an integer >= 1"),
    "lr": (1e-3, 1e-3, 0.0, "a finite number > 0"),
    "clip_norm": (None, None, -1.0, "None or a finite number > 0"),
    "seed": (0, 0, -1, "an integer >= 0"),
    "backend": ("numba", "numba", "cuda", "None or one of 'numpy', 'numba'"),
}


def test_the_table_is_every_setting_of_a_run_and_fit_takes_its_part():
    assert set(SETTINGS) == set(TrainConfig.keys()) == set(CASES)
    assert set(FIT_SETTINGS) <= set(inspect.signature(npvae.fit).parameters)
    for name in FIT_SETTINGS:
        if name != "binarize":  # fit's is a switch, a run's is the mode
            assert FIT_SETTINGS[name] is SETTINGS[name]


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_constraint_accepts_a_good_value_and_names_a_bad_one(name):
    good, normalised, bad, words = CASES[name]
    value = check_setting(name, good, "here")
    assert value == normalised and type(value) is type(normalised)
    with pytest.raises(SettingError) as info:
        check_setting(name, bad, "here")
    err = info.value
    assert str(err) == f"here: {err.detail}" and err.name == name
    assert err.detail.startswith(f"{name} must be ") and words in err.detail
    assert err.detail.endswith(f", got {bad!r}")


@pytest.mark.parametrize("name,value", [
    ("epochs", 2.9), ("epochs", 10.0), ("epochs", np.float64(3.0)), ("epochs", "3"),
    ("epochs", False), ("seed", True), ("latent_dim", 0), ("n_samples", -2),
    ("lr", math.inf), ("lr", -1e-3), ("beta", True), ("beta", "1"), ("beta", math.nan),
    ("clip_norm", 0), ("clip_norm", -5.0), ("clip_norm", math.inf), ("test_fraction", -0.1),
    ("hidden", [4, 0]), ("hidden", [True]), ("hidden", 2.0), ("hidden", "4,-1"),
    ("conditional", "yes"), ("objective", None), ("dataset", None),
])
def test_strict_types_and_bounds(name, value):
    """No truncation (2.9 is not 2), no int-valued floats for integers (TrainConfig has always
    refused 10.0 in a config file), no bools for numbers, no NaN or inf, clip_norm > 0."""
    with pytest.raises(SettingError, match=f"^{name} must be"):
        check_setting(name, value)


@pytest.mark.parametrize("name,value,expected", [
    ("hidden", "", []), ("hidden", 16, [16]), ("hidden", (5, 3), [5, 3]),
    ("hidden", [np.int32(7)], [7]), ("clip_norm", 10, 10.0), ("test_fraction", 0.5, 0.5),
    ("backend", None, None), ("seed", np.uint8(3), 3),
])
def test_normalised_values(name, value, expected):
    assert check_setting(name, value) == expected


def test_check_settings_checks_a_dict_and_fit_binarize_is_a_switch():
    assert check_settings({"epochs": np.int32(2), "lr": 1}) == {"epochs": 2, "lr": 1.0}
    assert check_setting("binarize", True, table=FIT_SETTINGS) is True
    with pytest.raises(SettingError, match="binarize must be true or false, got 'dynamic'"):
        check_setting("binarize", "dynamic", "fit", table=FIT_SETTINGS)


@pytest.mark.parametrize("settings,fragment", [
    ({"beta": 0.5}, "defined for beta = 1 only, got beta 0.5"),
    ({"free_bits": 0.25}, "free bits, got free_bits 0.25"),
    ({"warmup_epochs": 2}, "the IWAE objective has none, got warmup_epochs 2"),
])
def test_the_iwae_objective_has_no_kl_term_to_weigh(settings, fragment):
    values = dict(objective="iwae", beta=1.0, free_bits=0.0, warmup_epochs=0) | settings
    with pytest.raises(SettingError, match=fragment):
        check_combination(values, source="s")
    check_combination(values | {"objective": "elbo"})


@pytest.mark.parametrize("settings,fragment", [
    ({"objective": "elbo", "alpha": 0.5}, "alpha weighs a term of the tcvae objective; with "
                                          "objective 'elbo' it must be 1, got alpha 0.5"),
    ({"objective": "iwae", "alpha": 1, "beta": 1, "gamma": 2},
     "with objective 'iwae' it must be 1, got gamma 2"),
    ({"free_bits": 0.25}, "tcvae objective weighs its parts with alpha, beta and gamma instead, "
                          "got free_bits 0.25"),
    ({"warmup_epochs": 3}, "has three (alpha, beta, gamma), got warmup_epochs 3"),
])
def test_alpha_and_gamma_belong_to_the_tcvae_objective(settings, fragment):
    values = dict(objective="tcvae", beta=6.0, alpha=0.5, gamma=2.0) | settings
    with pytest.raises(SettingError, match=re.escape(fragment)):
        check_combination(values, source="s")
    check_combination(dict(objective="tcvae", beta=6.0, alpha=0.5, gamma=2.0))


# ------------------------------------------------------------------ one message everywhere


def _fit_error(**kwargs):
    x = np.random.default_rng(0).random((8, 4)).astype(np.float32)
    with pytest.raises(SettingError) as info:
        npvae.fit(npvae.VAE(4, 1, hidden=()), x, **({"epochs": 1} | kwargs))
    assert str(info.value) == f"fit: {info.value.detail}"
    return info.value.detail


def _config_error(settings):
    with pytest.raises(UsageError) as info:
        TrainConfig.from_dict(settings, source="config.json")
    message = str(info.value)
    assert message.startswith("config.json: ")
    return message[len("config.json: "):]


def _cli_error(capsys, *argv):
    """The one stderr line of a usage error (exit status 2, no traceback)."""
    try:
        status = main([str(a) for a in argv])
    except SystemExit as exit_:
        status = exit_.code
    err = capsys.readouterr().err
    assert status == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


# (setting, bad value, its flag, the flag's text)
FIT_AND_FLAG = [
    ("epochs", 2.9, "--epochs", "2.9"),
    ("epochs", 0, "--epochs", "0"),
    ("batch_size", 0, "--batch-size", "0"),
    ("n_samples", 0, "--samples", "0"),
    ("beta", -1, "--beta", "-1"),
    ("beta", math.inf, "--beta", "inf"),
    ("clip_norm", 0, "--clip-norm", "0"),
    ("clip_norm", -1.0, "--clip-norm", "-1.0"),
    ("free_bits", math.nan, "--free-bits", "nan"),
    ("warmup_epochs", 1.5, "--warmup-epochs", "1.5"),
    ("seed", -3, "--seed", "-3"),
    ("objective", "vae", "--objective", "vae"),
]


@pytest.mark.parametrize("name,value,flag,text", FIT_AND_FLAG)
def test_a_bad_value_gets_one_message_from_fit_config_and_flag(name, value, flag, text, capsys):
    detail = _fit_error(**{name: value})
    assert detail == f"{name} must be {SETTINGS[name].text}, got {value!r}"
    assert _config_error({name: value}) == detail
    err = _cli_error(capsys, "train", flag, text)
    assert f"argument {flag}: {detail} (see" in err


@pytest.mark.parametrize("name,value,flag,text", [
    ("latent_dim", 0, "--latent-dim", "0"),
    ("lr", 0, "--lr", "0"),
    ("lr", math.nan, "--lr", "nan"),
    ("hidden", "2,x", "--hidden", "2,x"),
    ("activation", "swish", "--activation", "swish"),
    ("likelihood", "poisson", "--likelihood", "poisson"),
    ("binarize", "always", "--binarize", "always"),
    ("backend", "cuda", "--backend", "cuda"),
])
def test_run_only_settings_get_one_message_from_config_and_flag(name, value, flag, text,
                                                                capsys):
    detail = _config_error({name: value})
    assert detail.startswith(f"{name} must be ")
    assert f"argument {flag}: {detail} (see" in _cli_error(capsys, "train", flag, text)


def test_a_config_file_names_itself(tmp_path, capsys):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"epochs": 10.0}))
    err = _cli_error(capsys, "train", "--config", path)
    assert f"npvae: error: {path}: epochs must be an integer >= 1, got 10.0" in err


def test_the_iwae_rule_gets_one_message_from_fit_config_and_flags(capsys):
    detail = _fit_error(objective="iwae", n_samples=2, beta=0.5)
    assert detail == "the IWAE objective is defined for beta = 1 only, got beta 0.5"
    assert _config_error({"objective": "iwae", "beta": 0.5}) == detail
    err = _cli_error(capsys, "train", "--objective", "iwae", "--beta", "0.5")
    assert f"npvae: error: settings: {detail}" in err


@pytest.mark.parametrize("argv,fragment", [
    (["evaluate", "run", "--k", "0"], "argument --k: k must be an integer >= 1, got 0"),
    (["sample", "run", "-n", "2.5"], "argument -n: n must be an integer >= 1, got 2.5"),
    (["sample", "run", "--label", "-1"], "label must be an integer >= 0, got -1"),
    (["gradcheck", "--tol", "0"], "tol must be a finite number > 0, got 0"),
    (["gradcheck", "--h", "x"], "h must be a finite number > 0, got 'x'"),
    (["train", "--threads", "0"], "threads must be an integer >= 1, got 0"),
])
def test_command_options_are_checked_the_same_way(argv, fragment, capsys):
    assert fragment in _cli_error(capsys, *argv)
