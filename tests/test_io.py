"""Save / load: identical outputs after a round trip, atomic writes, clear errors for bad files."""
import io
import json
import os
import zipfile

import numpy as np
import pytest

import npvae
from npvae import io as npio


def _model(**kw):
    kw = {"input_dim": 6, "latent_dim": 2, "hidden": (5,), "seed": 3, **kw}
    return npvae.VAE(**kw)


@pytest.mark.parametrize("likelihood", ["bernoulli", npvae.Gaussian(sigma=0.2), "gaussian-learned",
                                        "continuous-bernoulli"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_gives_identical_outputs(tmp_path, likelihood, dtype):
    model = _model(likelihood=likelihood, dtype=dtype, decoder_hidden=(4, 3), activation="elu")
    model.params["decoder.out.b"][...] = np.linspace(-1, 1, model.output_dim)  # not the init
    path = tmp_path / "m.npz"
    npvae.save(model, path)
    again = npvae.load(path)
    assert again.get_config() == model.get_config()
    for name in model.params:
        assert again.params[name].dtype == np.dtype(dtype)
        np.testing.assert_array_equal(again.params[name], model.params[name])
    x = np.random.default_rng(0).uniform(size=(4, 6)).astype(dtype)
    eps = np.random.default_rng(1).standard_normal((2, 4, 2)).astype(dtype)
    np.testing.assert_array_equal(again.reconstruct(x), model.reconstruct(x))
    assert again.loss_and_grads(x, eps=eps)[0] == model.loss_and_grads(x, eps=eps)[0]


def test_save_is_atomic_and_keeps_the_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    npvae.save(_model(seed=1), path)
    before = path.read_bytes()

    def broken_savez(f, **arrays):
        f.write(b"PK\x03\x04 half an archive")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        npvae.save(_model(seed=2), path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.npz"]  # no temporary file left behind


def test_extra_arrays_travel_with_the_model(tmp_path):
    path = tmp_path / "ckpt.npz"
    npvae.save(_model(), path, extra={"epoch": np.array(7), "note": np.array("hello")})
    config, params, extra = npio.read_archive(path)
    assert int(extra["epoch"]) == 7 and str(extra["note"]) == "hello"
    assert config["hidden"] == [5] and "encoder.0.W" in params


def _write_npz(path, **arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    path.write_bytes(buf.getvalue())


def test_a_foreign_npz_is_refused(tmp_path):
    path = tmp_path / "other.npz"
    _write_npz(path, weights=np.ones(3))
    with pytest.raises(ValueError, match="not an npvae save file"):
        npvae.load(path)


def test_a_text_file_is_refused(tmp_path):
    path = tmp_path / "notes.npz"
    path.write_text("these are not weights\n")
    with pytest.raises(ValueError, match=str(path)):
        npvae.load(path)


def test_a_truncated_file_is_refused(tmp_path):
    path = tmp_path / "m.npz"
    npvae.save(_model(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated"):
        npvae.load(path)


def test_pickled_objects_are_refused(tmp_path):
    model = _model()
    path = tmp_path / "evil.npz"
    arrays = {"__npvae__": np.array(1), "__config__": np.array(json.dumps(model.get_config()))}
    arrays.update({"param/" + k: v for k, v in model.params.items()})
    arrays["param/encoder.0.b"] = np.array([object()], dtype=object)
    _write_npz(path, **arrays)
    with pytest.raises(ValueError, match="pickle"):
        npvae.load(path)


def test_mismatched_shapes_and_names_are_refused(tmp_path):
    model = _model()
    config = model.get_config()
    base = {"__npvae__": np.array(1), "__config__": np.array(json.dumps(config))}
    params = {"param/" + k: v for k, v in model.params.items()}

    path = tmp_path / "shape.npz"
    _write_npz(path, **base, **{**params, "param/decoder.0.W": np.zeros((2, 9))})
    with pytest.raises(ValueError, match=r"decoder.0.W has shape \(2, 9\), but the config gives \(2, 5\)"):
        npvae.load(path)

    path = tmp_path / "missing.npz"
    _write_npz(path, **base, **{k: v for k, v in params.items() if k != "param/encoder.out.b"})
    with pytest.raises(ValueError, match=r"missing \['encoder.out.b'\]"):
        npvae.load(path)

    path = tmp_path / "nan.npz"
    _write_npz(path, **base, **{**params, "param/encoder.0.b": np.full(5, np.nan, np.float32)})
    with pytest.raises(ValueError, match="encoder.0.b contains NaN"):
        npvae.load(path)


def test_newer_format_and_broken_config_are_refused(tmp_path):
    path = tmp_path / "future.npz"
    _write_npz(path, __npvae__=np.array(99), __config__=np.array("{}"))
    with pytest.raises(ValueError, match="version 99 is newer"):
        npvae.load(path)
    path = tmp_path / "config.npz"
    _write_npz(path, __npvae__=np.array(1), __config__=np.array("{not json"))
    with pytest.raises(ValueError, match="not valid JSON"):
        npvae.load(path)
    path = tmp_path / "arch.npz"
    _write_npz(path, __npvae__=np.array(1), __config__=np.array('{"input_dim": 5, "colour": 3}'))
    with pytest.raises(ValueError, match="cannot build a model"):
        npvae.load(path)


def test_missing_file_is_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        npvae.load(tmp_path / "nope.npz")


def test_saved_file_is_a_plain_zip_of_npy_arrays(tmp_path):
    path = tmp_path / "m.npz"
    npvae.save(_model(), path)
    with zipfile.ZipFile(path) as z:
        names = set(z.namelist())
    assert {"__npvae__.npy", "__config__.npy", "param/encoder.0.W.npy"} <= names
