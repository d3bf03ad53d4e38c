"""Run folders and files under careless and hostile use, with real processes and real faults.

Each test makes the fault happen for real where it can: a second `npvae` process racing for
a folder, SIGKILL during checkpoint writes, SIGTERM, memory capped with setrlimit, a write
size capped with RLIMIT_FSIZE (the way a full disk fails a write), a read-only tmpfs, a
FIFO, files crafted byte by byte. Every refusal must be one line on stderr, exit 2, naming
the file or setting and the problem; nothing written before may be lost.
"""
import io
import json
import os
import random
import resource
import signal
import stat
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

import npvae
from npvae.app.checkpoints import load_checkpoint

QUIET = ["--quiet", "--no-figures"]
TINY = ["--hidden", "8", *QUIET]
ENV = dict(os.environ, PYTHONUNBUFFERED="1", OPENBLAS_NUM_THREADS="1", MPLBACKEND="Agg")


def npvae_cli(*argv, cwd=None, limit=None, timeout=120, env=None):
    """Run `python -m npvae argv...` in a new process: (status, stdout, stderr).
    limit: (resource, bytes) applied with setrlimit in the child before it starts."""
    def prepare():
        if limit is not None:
            resource.setrlimit(limit[0], (limit[1], limit[1]))
    proc = subprocess.run([sys.executable, "-m", "npvae", *map(str, argv)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout,
                          env=ENV if env is None else env, preexec_fn=prepare)
    return proc.returncode, proc.stdout, proc.stderr


def start(*argv, cwd=None):
    return subprocess.Popen([sys.executable, "-m", "npvae", *map(str, argv)], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)


def assert_one_line(status, err, *fragments, expected=2):
    assert status == expected, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, err


def wait_for(predicate, timeout=60):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


def snapshot(folder, but=()):
    """{relative path: bytes} of every file in a folder (but those named), to show nothing
    was touched."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name not in but}


# ------------------------------------------------------------------ divergence


def test_divergence_at_validation_keeps_the_last_good_checkpoint_and_the_hint_works(tmp_path):
    # One step per epoch (batch larger than the data) at lr 1e3: the first step's loss is
    # finite, the model it leaves is not, and only the end-of-epoch check can see it.
    status, _, err = npvae_cli("train", "--epochs", "4", "--lr", "1e3", "--batch-size", "100000",
                               "--likelihood", "gaussian", "--quiet", "--no-figures", "--out",
                               "dvg", cwd=tmp_path)
    assert_one_line(status, err, "diverged at the end of epoch 1", "held-out loss is inf",
                    "before the first epoch", expected=1)
    ck = load_checkpoint(tmp_path / "dvg" / "model.npz")
    assert ck.state.epoch == 0 and np.isfinite(ck.model.flat_params).all()
    suggested = err.rsplit("--lr ", 1)[1].split()[0]
    assert float(suggested) <= 1e3 / 10
    status, _, err = npvae_cli("train", "--resume", "dvg", "--lr", suggested, "--quiet",
                               "--no-figures", cwd=tmp_path)
    assert status == 0, err
    history = load_checkpoint(tmp_path / "dvg" / "model.npz").state.history
    assert history.epoch == [1, 2, 3, 4] and np.isfinite(history.val_loss).all()


# ------------------------------------------------------------------ one writer per folder


def test_a_second_writer_is_refused_naming_the_holder_and_sigterm_saves(tmp_path):
    first = start("train", "--out", "r", "--epochs", "100000", *TINY, cwd=tmp_path)
    try:
        wait_for(lambda: (tmp_path / "r" / "metrics.csv").exists())
        status, _, err = npvae_cli("train", "--out", "r", *TINY, cwd=tmp_path)
        assert_one_line(status, err, "in use by npvae process", str(first.pid))
        status, _, err = npvae_cli("train", "--resume", "r", *TINY, cwd=tmp_path)
        assert_one_line(status, err, "in use by npvae process", str(first.pid))
        status, _, err = npvae_cli("plot", "r", cwd=tmp_path)
        assert_one_line(status, err, "in use")
        first.send_signal(signal.SIGTERM)
        _, err = first.communicate(timeout=60)
    finally:
        first.kill()
    assert first.returncode == 143 and "terminated (SIGTERM)" in err and "--resume" in err, err
    saved = load_checkpoint(tmp_path / "r" / "model.npz").state
    assert saved.epoch >= 1
    # The lock died with its holder: a resume takes the folder.
    status, _, err = npvae_cli("train", "--resume", "r", "--epochs", str(saved.epoch + 1), *TINY,
                               cwd=tmp_path)
    assert status == 0, err


def test_two_runs_started_together_into_one_folder(tmp_path):
    procs = [start("train", "--out", "same", "--epochs", "3", "--seed", str(seed), *TINY,
                   cwd=tmp_path) for seed in (1, 2)]
    results = [(p.wait(timeout=120), p.communicate()[1]) for p in procs]
    statuses = sorted(status for status, _ in results)
    assert statuses == [0, 2], results
    loser = next(err for status, err in results if status == 2)
    assert "in use by" in loser or "already holds run files" in loser
    # Every file of the folder comes from the one run that got it.
    config = json.loads((tmp_path / "same" / "config.json").read_text())
    for name in ("model.npz", "best.npz"):
        assert load_checkpoint(tmp_path / "same" / name).config.seed == config["seed"]


def test_a_killed_writer_leaves_a_lock_the_next_one_takes_over(tmp_path):
    first = start("train", "--out", "r", "--epochs", "100000", *TINY, cwd=tmp_path)
    wait_for(lambda: (tmp_path / "r" / "metrics.csv").exists())
    first.kill()
    first.wait()
    assert str(first.pid) in (tmp_path / "r" / ".lock").read_text()  # never released
    status, _, err = npvae_cli("train", "--resume", "r", "--epochs", "1", *TINY, cwd=tmp_path)
    assert status == 0, err  # "already has 1 epochs" or trains on: no refusal


@pytest.mark.parametrize("held", ["metrics.csv", "best.npz", "figures"])
def test_out_refuses_a_folder_holding_any_run_file(tmp_path, held):
    folder = tmp_path / "r"
    folder.mkdir()
    if held == "figures":
        (folder / "figures").mkdir()
        (folder / "figures" / "loss.png").write_bytes(b"not really a png")
    else:
        (folder / held).write_bytes(b"precious")
    before = snapshot(folder)
    status, _, err = npvae_cli("train", "--out", folder, *TINY)
    assert_one_line(status, err, "already holds run files", held)
    assert snapshot(folder) == before


# ------------------------------------------------------------------ kill -9 while writing


def test_sigkill_during_checkpoint_writes_never_leaves_a_bad_file(tmp_path):
    # Batches of 4 digits and 1 epoch = 360 steps: a checkpoint every ~0.1 s. Kill at
    # random moments; after each kill model.npz is a whole checkpoint a resume continues.
    rng = random.Random(0)
    status, _, err = npvae_cli("train", "--out", "r", "--epochs", "1", "--batch-size", "256",
                               *TINY, cwd=tmp_path)
    assert status == 0, err
    epochs = 1
    for _ in range(6):
        epochs += 1000
        proc = start("train", "--resume", "r", "--epochs", str(epochs), "--quiet",
                     "--no-figures", cwd=tmp_path)
        time.sleep(1.5 + rng.random())
        proc.kill()
        proc.wait()
        ck = load_checkpoint(tmp_path / "r" / "model.npz")
        assert np.isfinite(ck.model.flat_params).all()
        epochs = ck.state.epoch
    assert epochs > 1  # the kills did land after checkpoints were written
    status, _, err = npvae_cli("train", "--resume", "r", "--epochs", str(epochs + 1), "--quiet",
                               "--no-figures", cwd=tmp_path)
    assert status == 0, err
    assert not list((tmp_path / "r").rglob(".tmp-*"))  # the next writer cleaned up


def test_temporary_files_of_a_killed_writer_are_removed_by_the_next(tmp_path):
    status, _, err = npvae_cli("train", "--out", "r", "--epochs", "1", *TINY, cwd=tmp_path)
    assert status == 0, err
    (tmp_path / "r" / ".tmp-abc123-model.npz").write_bytes(b"half a checkpoint")
    status, _, err = npvae_cli("train", "--resume", "r", "--epochs", "2", *TINY, cwd=tmp_path)
    assert status == 0, err
    assert not list((tmp_path / "r").rglob(".tmp-*"))


# ------------------------------------------------------------------ sizes checked first


AS_LIMIT = (resource.RLIMIT_AS, 1536 * 2**20)  # enough for npvae itself, not for a bomb


def _crafted_save(path, declared_shape):
    """A save file of a real model whose encoder.0.W member's .npy header declares
    `declared_shape` of float32, its few bytes of data deflating to nothing."""
    model = npvae.VAE(64, latent_dim=2, hidden=(8,))
    npvae.save(model, path)
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": declared_shape})
    members["param/encoder.0.W.npy"] = header.getvalue() + b"\0" * 64
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)


def _deflate_bomb(path, inflated_bytes):
    """A save file whose parameter member is a real array of zeros of `inflated_bytes`,
    deflated to about a thousandth of that: a small file that inflates past the cap."""
    model = npvae.VAE(64, latent_dim=2, hidden=(8,))
    arrays = {"__npvae__": np.array(1), "__config__": np.array(json.dumps(model.get_config()))}
    arrays.update({"param/" + k: v for k, v in model.params.items()})
    n = inflated_bytes // 4
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, value in arrays.items():
            if name == "param/encoder.0.W":
                continue
            with z.open(name + ".npy", "w") as f:
                np.lib.format.write_array(f, np.asarray(value))
        with z.open("param/encoder.0.W.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False,
                                                     "shape": (n,)})
            zeros = bytes(1 << 24)
            for _ in range(inflated_bytes // len(zeros)):
                f.write(zeros)


@pytest.mark.parametrize("argv,fragments", [
    (["train", "--hidden", "99999999999"], ["parameters", "NPVAE_MAX_PARAMS"]),
    (["train", "--latent-dim", "1000000000"], ["parameters", "NPVAE_MAX_PARAMS"]),
    (["train", "--samples", "1000000000", "--epochs", "1"], ["n_samples", "NPVAE_MAX_BYTES"]),
    (["sample", "RUN", "-n", "1000000000000", "--out", "s.png"], ["NPVAE_MAX_BYTES"]),
])
def test_sizes_asked_by_flags_are_refused_under_a_memory_limit(tmp_path, argv, fragments):
    if "RUN" in argv:
        status, _, err = npvae_cli("train", "--out", "run", "--epochs", "1", *TINY, cwd=tmp_path)
        assert status == 0, err
        argv = [a if a != "RUN" else "run" for a in argv]
    status, _, err = npvae_cli(*argv, *(QUIET if argv[0] == "train" else []), cwd=tmp_path,
                               limit=AS_LIMIT)
    assert_one_line(status, err, *fragments)
    assert "MemoryError" not in err
    if argv[0] == "train":
        assert not (tmp_path / "runs").exists()  # refused before a run folder was made


def test_a_batch_larger_than_the_data_allocates_for_the_data(tmp_path):
    status, _, err = npvae_cli("train", "--batch-size", "1000000000", "--epochs", "1", *TINY,
                               "--out", "r", cwd=tmp_path, limit=AS_LIMIT)
    assert status == 0, err


def test_a_config_asking_for_a_billion_hidden_units(tmp_path):
    (tmp_path / "big.json").write_text(json.dumps({"hidden": [10**9]}))
    status, _, err = npvae_cli("train", "--config", "big.json", *QUIET, cwd=tmp_path,
                               limit=AS_LIMIT)
    assert_one_line(status, err, "parameters", "NPVAE_MAX_PARAMS")


def test_labels_of_a_billion_classes(tmp_path):
    x = np.random.default_rng(0).random((300, 4))
    y = np.zeros(300, dtype=np.int64)
    y[7] = 10**9
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y)
    status, _, err = npvae_cli("train", "--dataset", "d.npz", "--conditional", *TINY,
                               cwd=tmp_path, limit=AS_LIMIT)
    assert_one_line(status, err, "1,000,000,001 one-hot columns", "NPVAE_MAX_BYTES")


@pytest.mark.parametrize("declared", [(10**12,), (64, 10**10)])
def test_a_save_file_declaring_a_huge_array_is_refused_before_reading(tmp_path, declared):
    _crafted_save(tmp_path / "m.npz", declared)
    status, _, err = npvae_cli("evaluate", "m.npz", "--dataset", "digits", cwd=tmp_path,
                               limit=AS_LIMIT)
    assert_one_line(status, err, "m.npz", "encoder.0.W")
    assert "MemoryError" not in err


def test_a_save_file_whose_header_lies_about_its_entry(tmp_path):
    _crafted_save(tmp_path / "m.npz", (64, 8, 1000))  # under the cap, not what the entry holds
    status, _, err = npvae_cli("evaluate", "m.npz", "--dataset", "digits", cwd=tmp_path)
    assert_one_line(status, err, "m.npz", "damaged or crafted")


def test_a_deflate_bomb_model_is_refused_under_a_memory_limit(tmp_path):
    bomb = tmp_path / "bomb.npz"
    _deflate_bomb(bomb, 5 * 2**30)  # 5 GiB of zeros, above the 4 GiB cap
    assert bomb.stat().st_size < 10 * 2**20
    status, _, err = npvae_cli("evaluate", bomb, "--dataset", "digits", cwd=tmp_path,
                               limit=AS_LIMIT)
    assert_one_line(status, err, "bomb.npz", "NPVAE_MAX_BYTES")
    # Under the cap but not what the config implies: refused by shape, before reading.
    small = tmp_path / "small.npz"
    _deflate_bomb(small, 256 * 2**20)
    status, _, err = npvae_cli("evaluate", small, "--dataset", "digits", cwd=tmp_path,
                               limit=AS_LIMIT)
    assert_one_line(status, err, "small.npz", "encoder.0.W", "the config gives (64, 8)")


# ------------------------------------------------------------------ bad files, one line each


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("good")
    status, _, err = npvae_cli("train", "--out", folder / "run", "--epochs", "1", *TINY)
    assert status == 0, err
    return folder / "run"


def _rewrite(path, edit):
    """Rewrite the save file at `path` with edit(dict name -> array) applied."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    edit(arrays)
    np.savez(path, **arrays)


BROKEN_CHECKPOINTS = {
    "config a JSON list": (lambda a: a.update({"__config__": np.array("[1, 2]")}),
                           "JSON list"),
    "config not JSON": (lambda a: a.update({"__config__": np.array("{oops")}), "not valid JSON"),
    "no optimizer step": (lambda a: a.pop("extra/optim.t"), "optim.t"),
    "optimizer slot missing": (lambda a: a.pop("extra/optim./v"), "optimizer state"),
    "optimizer slot wrong shape": (lambda a: a.update({"extra/optim./m": np.zeros(3)}),
                                   "optim./m"),
    "step a float": (lambda a: a.update({"extra/fit.step": np.array(2.5)}), "fit.step"),
    "history not JSON": (lambda a: a.update({"extra/fit.history": np.array("[")}),
                         "fit.history"),
    "rng a number": (lambda a: a.update({"extra/fit.rng": np.array("3")}), "fit.rng"),
    "order of floats": (lambda a: a.update({"extra/fit.order": np.arange(1437.0),
                                            "extra/fit.step": np.array(2)}), "fit.order"),
    "order out of range": (lambda a: a.update({"extra/fit.order": np.arange(1437) + 5,
                                               "extra/fit.step": np.array(2)}),
                           "not a permutation"),
}


@pytest.mark.parametrize("case", list(BROKEN_CHECKPOINTS))
def test_a_broken_checkpoint_is_refused_in_one_line(tmp_path, good_run, case):
    edit, fragment = BROKEN_CHECKPOINTS[case]
    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.json", "model.npz"):
        (run / name).write_bytes((good_run / name).read_bytes())
    _rewrite(run / "model.npz", edit)
    before = snapshot(run)
    status, _, err = npvae_cli("train", "--resume", run, "--epochs", "2", *TINY)
    assert_one_line(status, err, "model.npz", fragment)
    assert snapshot(run, but=(".lock",)) == before  # a resume locks the folder first


@pytest.mark.parametrize("content,fragment", [
    (b"\x93NUMPY" + b"\x01\x00" + b"v\x00" + b"{'descr': '<f8', 'fortran_order': False, "
     b"'shape': (3,), }" + b" " * 53 + b"\n" + bytes(24), "a single .npy array"),
    (bytes(random.Random(1).getrandbits(8) for _ in range(4096)), "not an .npz archive"),
    (b"\x80\x04\x95" + bytes(100), "pickle"),
    (b"PK\x03\x04" + bytes(60), "truncated or damaged"),
])
def test_a_file_that_is_not_a_save_is_named_for_what_it_is(tmp_path, content, fragment):
    (tmp_path / "m.npz").write_bytes(content)
    status, _, err = npvae_cli("sample", "m.npz", "--out", "s.png", cwd=tmp_path)
    assert_one_line(status, err, "m.npz", fragment)
    if fragment != "pickle":
        assert "pickle" not in err


def test_a_fifo_given_as_a_model_or_a_config_does_not_hang(tmp_path):
    os.mkfifo(tmp_path / "m.npz")
    status, _, err = npvae_cli("evaluate", "m.npz", "--dataset", "digits", cwd=tmp_path,
                               timeout=60)
    assert_one_line(status, err, "m.npz", "FIFO")
    status, _, err = npvae_cli("train", "--config", "m.npz", cwd=tmp_path, timeout=60)
    assert_one_line(status, err, "m.npz", "FIFO")


def test_out_that_is_a_file_and_a_config_that_is_not_utf8(tmp_path):
    (tmp_path / "taken").write_text("a file")
    status, _, err = npvae_cli("train", "--out", "taken", *TINY, cwd=tmp_path)
    assert_one_line(status, err, "taken", "is a file")
    assert (tmp_path / "taken").read_text() == "a file"
    (tmp_path / "c.json").write_bytes(b'{"epochs": 2, "dataset": "d\xe9j\xe0"}')
    status, _, err = npvae_cli("train", "--config", "c.json", *TINY, cwd=tmp_path)
    assert_one_line(status, err, "c.json", "not UTF-8")


def test_an_image_kind_matplotlib_cannot_write_is_refused_before_work(tmp_path, good_run):
    status, _, err = npvae_cli("sample", good_run, "--out", "s.xyz", cwd=tmp_path)
    assert_one_line(status, err, "s.xyz", ".png")
    assert not list(tmp_path.iterdir())


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder no one may write to, not even root: a tmpfs mounted read-only (or, for a
    user who is not root, a folder of mode 0555)."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {done.stderr.decode().strip()}")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def test_out_under_a_read_only_folder(read_only_folder):
    status, _, err = npvae_cli("train", "--out", read_only_folder / "r", *TINY)
    assert_one_line(status, err, str(read_only_folder / "r"), "ead-only")
    status, _, err = npvae_cli("sample", "--out", read_only_folder / "s.png", "x.npz")
    assert status == 2 and "Traceback" not in err


def test_a_full_disk_keeps_the_last_checkpoint(tmp_path, good_run):
    """RLIMIT_FSIZE makes every write past its size fail with EFBIG, the way a full disk
    fails it with ENOSPC: the checkpoint cannot be written, the old one stays whole."""
    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.json", "model.npz", "metrics.csv", "best.npz"):
        (run / name).write_bytes((good_run / name).read_bytes())
    before = (run / "model.npz").read_bytes()
    status, _, err = npvae_cli("train", "--resume", run, "--epochs", "3", *TINY,
                               limit=(resource.RLIMIT_FSIZE, 4096))
    assert_one_line(status, err, "model.npz", "too large")
    assert (run / "model.npz").read_bytes() == before
    assert not list(run.rglob(".tmp-*"))


def test_figures_that_cannot_be_drawn_do_not_fail_the_training(tmp_path):
    status, _, err = npvae_cli("train", "--out", "r", "--epochs", "1", *TINY, cwd=tmp_path)
    assert status == 0, err
    (tmp_path / "r" / "figures").write_text("a file where the figures folder goes")
    status, out, err = npvae_cli("train", "--resume", "r", "--epochs", "2", "--hidden", "8",
                                 cwd=tmp_path)
    assert status == 0, err
    assert_one_line(1, err, "model is saved", "figures could not be drawn", "npvae plot",
                    expected=1)
    assert load_checkpoint(tmp_path / "r" / "model.npz").state.epoch == 2


# ------------------------------------------------------------------ nothing read wrong


def test_resume_on_changed_data_is_refused_naming_both(tmp_path):
    x = np.random.default_rng(0).random((1500, 6))
    np.save(tmp_path / "d.npy", x)
    status, _, err = npvae_cli("train", "--dataset", "d.npy", "--out", "r", "--epochs", "1",
                               *TINY, cwd=tmp_path)
    assert status == 0, err
    np.save(tmp_path / "d.npy", x[:300])
    status, _, err = npvae_cli("train", "--resume", "r", "--epochs", "2", *TINY, cwd=tmp_path)
    assert_one_line(status, err, "1,200 x 6 training", "240 x 6 training", "d.npy")
    x[0, 0] = 1 - x[0, 0]  # same shape, one value changed
    np.save(tmp_path / "d.npy", x)
    status, _, err = npvae_cli("train", "--resume", "r", "--epochs", "2", *TINY, cwd=tmp_path)
    assert_one_line(status, err, "sha256")


def test_resume_accepts_a_flag_repeating_the_runs_own_value(tmp_path):
    status, _, err = npvae_cli("train", "--out", "r", "--epochs", "1", *TINY, cwd=tmp_path)
    assert status == 0, err
    status, _, err = npvae_cli("train", "--resume", "r", "--seed", "0", "--epochs", "2", *TINY,
                               cwd=tmp_path)
    assert status == 0, err
    status, _, err = npvae_cli("train", "--resume", "r", "--seed", "1", *TINY, cwd=tmp_path)
    assert_one_line(status, err, "--seed cannot change", "the run has 0")


# ------------------------------------------------------------------ files as the user expects


def test_every_run_file_gets_the_umask_mode(tmp_path):
    def with_umask(mask):
        def prepare():
            os.umask(mask)
        return prepare
    for mask, mode in ((0o022, 0o644), (0o002, 0o664)):
        folder = tmp_path / f"r{mask:o}"
        proc = subprocess.run([sys.executable, "-m", "npvae", "train", "--out", str(folder),
                               "--epochs", "1", "--hidden", "8", "--quiet"], env=ENV,
                              capture_output=True, text=True, preexec_fn=with_umask(mask))
        assert proc.returncode == 0, proc.stderr
        files = [p for p in folder.rglob("*") if p.is_file()]
        assert len(files) >= 8  # config, metrics, two checkpoints, the lock, figures
        modes = {str(p.relative_to(folder)): stat.S_IMODE(p.stat().st_mode) for p in files}
        assert set(modes.values()) == {mode}, modes


def test_an_unexpected_error_is_one_line_and_a_report(tmp_path, monkeypatch, capsys):
    from npvae.app import cli, commands

    def broken(args):
        raise RuntimeError("a bug in npvae")
    monkeypatch.setattr(commands, "cmd_plot", broken)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", None)
    parser = cli.build_parser()
    parser._subparsers._group_actions[0].choices["plot"].set_defaults(func=broken)
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    status = cli.main(["plot", "anything"])
    err = capsys.readouterr().err
    assert_one_line(status, err, "internal error", "RuntimeError: a bug in npvae", expected=3)
    report = err.split("report is in ")[1].split(";")[0]
    text = open(report).read()
    assert "Traceback" in text and "a bug in npvae" in text and "def broken" not in err
