"""`npvae sweep` and npvae.sweep on real processes: a local pool and a Dask LocalCluster, a
worker killed with SIGKILL mid-sweep, a rerun that skips everything, a diverging
combination, and specs refused before anything runs."""
import csv
import json
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

import npvae
from npvae.app import runs
from npvae.app.cli import main
from npvae.app.sweep import RESULT_FILE, RESULT_FIELDS, load_spec, one_thread
from npvae.app.config import UsageError
from npvae.app.lock import RunLock

TINY = {"hidden": [8], "epochs": 2, "latent_dim": 2}
GRID = {"base": TINY, "grid": {"beta": [0.5, 4], "seed": [0, 1]}, "k": 20}
NAMES = ["beta=0.5_seed=0", "beta=0.5_seed=1", "beta=4_seed=0", "beta=4_seed=1"]
# Long enough (a few seconds a run) to be killed after its second epoch.
LONG = {"base": {"hidden": [256, 128], "epochs": 30, "latent_dim": 2}, "grid": {"seed": [0, 1]},
        "k": 10}
KILLED = "seed=0"
NUMBERS = ("status",) + ("negative_elbo", "reconstruction", "kl", "log_likelihood",
                         "active_units", "k", "epochs_done")


def write_spec(folder, spec):
    path = Path(folder) / "spec.json"
    path.write_text(json.dumps(spec))
    return path


def read_csv(out):
    with open(Path(out) / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def numbers(rows):
    """The rows' settings and results, without where and how long they ran."""
    return [{k: v for k, v in r.items() if k not in ("worker", "seconds", "resumed_at_epoch")}
            for r in rows]


def spawn_pool(n=2):
    return ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn"))


class Killer(threading.Thread):
    """Kills with SIGKILL the process that holds run folder `run_dir` once the run has
    finished `after` epochs (its pid is in the folder's .lock). metrics.csv is written
    just before model.npz, so the checkpoint left may be one epoch behind `epochs`."""

    def __init__(self, run_dir, after=2, timeout=120):
        super().__init__(daemon=True)
        self.run_dir, self.after, self.timeout = Path(run_dir), after, timeout
        self.pid = self.epochs = None

    def run(self):
        deadline = time.monotonic() + self.timeout
        metrics, lock = self.run_dir / runs.METRICS_FILE, self.run_dir / ".lock"
        while time.monotonic() < deadline:
            try:
                done = len(metrics.read_text().splitlines()) - 1
                holder = lock.read_text().split()
            except OSError:
                done, holder = 0, []
            if done >= self.after and holder:
                pid = int(holder[0])
                assert pid != os.getpid()
                os.kill(pid, signal.SIGKILL)
                self.pid, self.epochs = pid, done
                return
            time.sleep(0.01)


# ------------------------------------------------------------------ the spec


@pytest.mark.parametrize("spec,fragment", [
    ({"grid": {"betta": [1]}}, "grid: unknown setting 'betta'"),
    ({"base": TINY, "grid": {"beta": [0.5, -1]}}, "beta must be a finite number >= 0, got -1"),
    ({"gird": {"beta": [1]}}, "unknown key 'gird'"),
    ({"grid": {"beta": []}}, "beta must be a non-empty list"),
    ({"base": {"epochs": 2.5}}, "base: epochs must be an integer"),
    ({"runs": [{"seed": 1}, {"hidden": "x"}]}, "runs[1]: hidden must be"),
    ({"grid": {"seed": [0]}, "k": 0}, "k must be an integer >= 1"),
    ({"grid": {"seed": [0, 0]}}, "grid seed=0 and grid seed=0 are the same run"),
    ("[1, 2", "not valid JSON"),
])
def test_a_bad_spec_is_refused_in_one_line_before_anything_runs(tmp_path, capsys, spec, fragment):
    path = tmp_path / "spec.json"
    path.write_text(spec if isinstance(spec, str) else json.dumps(spec))
    out = tmp_path / "out"
    status = main(["sweep", str(path), "--out", str(out), "--quiet"])
    captured = capsys.readouterr()
    assert status == 2
    assert captured.err.startswith("npvae: error: ") and fragment in captured.err, captured.err
    assert len(captured.err.strip().splitlines()) == 1 and captured.out == ""
    assert not out.exists()


def test_spec_names_runs_from_the_varied_settings():
    plan = load_spec({"base": {"hidden": [8]},
                      "grid": {"beta": [0.5, 1], "hidden": ["8", [16, 8]]},
                      "runs": [{"beta": 2.0, "dataset": "data/my file.npy"}]})
    assert plan.varied == ("beta", "hidden", "dataset")
    names = [r.name for r in plan.runs]
    assert names[0] == "beta=0.5_hidden=8_dataset=digits"
    assert names[3] == "beta=1_hidden=16-8_dataset=digits"
    assert names[4] == "beta=2_hidden=8_dataset=data-my-file.npy"
    assert len(set(names)) == 5 and all("/" not in n and " " not in n for n in names)
    assert [r.config.hidden for r in plan.runs[:2]] == [[8], [16, 8]]
    with pytest.raises(UsageError, match="unknown setting 'seeds'"):
        load_spec({"runs": [{"seeds": 1}]})


# ------------------------------------------------------------------ the local pool


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    """The 2 x 2 digits sweep through `npvae sweep --workers 2`: (folder, exit status)."""
    folder = tmp_path_factory.mktemp("local")
    out = folder / "out"
    status = main(["sweep", str(write_spec(folder, GRID)), "--out", str(out), "--workers", "2",
                   "--quiet"])
    return out, status


def test_local_pool_sweep_writes_run_folders_results_and_figures(local):
    out, status = local
    assert status == 0
    rows = read_csv(out)
    assert list(rows[0]) == ["run", "beta", "seed", *RESULT_FIELDS]
    assert [r["run"] for r in rows] == NAMES
    assert [(r["beta"], r["seed"]) for r in rows] == [("0.5", "0"), ("0.5", "1"), ("4.0", "0"),
                                                      ("4.0", "1")]
    assert all(r["status"] == "ok" and r["error"] == "" for r in rows)
    host_pids = {r["worker"] for r in rows}
    assert all(w.split(":")[1] != str(os.getpid()) for w in host_pids)  # run in the workers
    for row in rows:
        run_dir = out / "runs" / row["run"]
        for name in runs.RUN_FILES:
            assert (run_dir / name).exists(), name  # an ordinary run folder
        cfg = runs.read_run_config(run_dir)
        assert cfg.hidden == [8] and cfg.beta == float(row["beta"]) and cfg.seed == int(row["seed"])
        assert row["epochs_done"] == "2" and row["k"] == "20"
        assert float(row["kl"]) > 0 and int(row["active_units"]) <= 2
        # The row's numbers are npvae evaluate's: the final model on the held-out split,
        # computed here with one thread as the worker computes it (float32 sums split
        # between threads round differently).
        model, config, _ = runs.load_model(run_dir)
        from npvae.app.rundata import load_run_data
        x = load_run_data(config).x_val
        with one_thread():
            assert float(row["negative_elbo"]) == npvae.negative_elbo(model, x, seed=0)[0]
    # beta 4 pays more for its rate than beta 0.5: less KL.
    kl = {r["run"]: float(r["kl"]) for r in rows}
    assert kl["beta=4_seed=0"] < kl["beta=0.5_seed=0"] and kl["beta=4_seed=1"] < kl["beta=0.5_seed=1"]
    for name in ("rate_distortion.png", "beta.png"):
        assert (out / "figures" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.rglob(".tmp-*"))


def test_rerun_skips_every_finished_run(local, capsys):
    out, _ = local
    before = read_csv(out)
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*.npz")}
    start = time.monotonic()
    status = main(["sweep", str(out.parent / "spec.json"), "--out", str(out), "--workers", "2"])
    seconds = time.monotonic() - start
    captured = capsys.readouterr()
    assert status == 0 and "done: 4 ok" in captured.out
    assert read_csv(out) == before  # the same rows, the same workers: nothing ran again
    assert {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*.npz")} == stamps
    assert seconds < 30


def test_a_run_without_its_result_is_resumed_from_its_checkpoint(local, tmp_path):
    out, _ = local
    before = read_csv(out)
    (out / "runs" / NAMES[1] / RESULT_FILE).unlink()  # as if killed after its last epoch
    rows = npvae.sweep(out.parent / "spec.json", out, workers=1, run_figures=False)
    after = read_csv(out)
    assert numbers(after) == numbers(before)
    assert after[1]["resumed_at_epoch"] == "2" and after[1]["worker"] != before[1]["worker"]
    assert [r["worker"] for i, r in enumerate(after) if i != 1] == \
        [r["worker"] for i, r in enumerate(before) if i != 1]
    assert rows[1]["negative_elbo"] == float(before[1]["negative_elbo"])


def test_a_changed_setting_or_a_sweep_under_way_is_refused(local, capsys):
    out, _ = local
    (out.parent / "other").mkdir()
    spec = write_spec(out.parent / "other", {**GRID, "base": {**TINY, "hidden": [16]}})
    stamps = {p: p.stat().st_mtime_ns for p in [*out.glob("runs/*/*"), out / "results.csv", out / "spec.json"]}
    assert main(["sweep", str(spec), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "holds a run with hidden [8], but the spec says [16]" in err
    assert len(err.strip().splitlines()) == 1
    with RunLock(out).acquire():  # another sweep into the same folder
        assert main(["sweep", str(out.parent / "spec.json"), "--out", str(out), "--quiet"]) == 2
    assert "is in use by npvae process" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in [*out.glob("runs/*/*"), out / "results.csv", out / "spec.json"]} == stamps


def test_a_diverging_run_is_recorded_and_the_others_go_on(tmp_path):
    spec = {"base": {**TINY, "batch_size": 5000, "likelihood": "gaussian"},
            "grid": {"lr": [0.003, 1000.0]}, "k": 5}
    with spawn_pool() as pool:  # any executor
        rows = npvae.sweep(spec, tmp_path / "out", pool, run_figures=False)
    assert [r["run"] for r in rows] == ["lr=0.003", "lr=1000"]
    ok, diverged = rows
    assert ok["status"] == "ok" and ok["negative_elbo"] is not None
    assert diverged["status"] == "diverged" and "diverged at" in diverged["error"]
    assert diverged["negative_elbo"] is None and "\n" not in diverged["error"]
    assert [r["status"] for r in read_csv(tmp_path / "out")] == ["ok", "diverged"]
    # The last good checkpoint is kept, and the rerun skips the diverged run too.
    assert (tmp_path / "out" / "runs" / "lr=1000" / runs.LAST_FILE).exists()
    again = npvae.sweep(spec, tmp_path / "out", workers=1, run_figures=False)
    assert again == rows


@pytest.fixture(scope="module")
def local_killed(tmp_path_factory):
    """The LONG sweep on a local pool whose worker running seed=0 is killed (SIGKILL)."""
    out = tmp_path_factory.mktemp("killed") / "out"
    killer = Killer(out / "runs" / KILLED)
    killer.start()
    rows = npvae.sweep(LONG, out, workers=2, run_figures=False)
    killer.join()
    return rows, killer


def test_a_killed_local_worker_has_its_run_resumed_in_a_new_pool(local_killed):
    rows, killer = local_killed
    assert killer.pid is not None, "the run ended before it could be killed"
    assert [r["status"] for r in rows] == ["ok", "ok"]
    killed = rows[0]
    assert killed["run"] == KILLED and killed["epochs_done"] == 30
    assert killed["resumed_at_epoch"] >= killer.epochs - 1 >= 1  # from its checkpoint
    assert killed["worker"].split(":")[1] != str(killer.pid)


# ------------------------------------------------------------------ Dask


@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip(
        "distributed", reason="dask.distributed is not installed (pip install 'npvae[dask]')")
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  host="127.0.0.1", dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        yield client


def test_dask_cluster_gives_the_local_pools_numbers(dask_client, local, tmp_path):
    out, _ = local
    rows = npvae.sweep(GRID, tmp_path / "out", dask_client.get_executor(pure=False))
    assert all(r["status"] == "ok" for r in rows)
    assert numbers(read_csv(tmp_path / "out")) == numbers(read_csv(out))
    workers = set(dask_client.run(os.getpid).values())
    assert {int(r["worker"].split(":")[1]) for r in rows} <= workers


def test_a_killed_dask_worker_has_its_run_resumed_elsewhere(dask_client, local_killed, tmp_path):
    out = tmp_path / "out"
    killer = Killer(out / "runs" / KILLED)
    killer.start()
    rows = npvae.sweep(LONG, out, dask_client.get_executor(pure=False), run_figures=False)
    killer.join()
    assert killer.pid is not None, "the run ended before it could be killed"
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert rows[0]["resumed_at_epoch"] >= killer.epochs - 1 >= 1
    assert rows[0]["worker"].split(":")[1] != str(killer.pid)
    # Killed at other epochs, on other executors, resumed: the same numbers.
    local_rows, _ = local_killed
    assert numbers(rows) == numbers(local_rows)


def test_sweep_help_describes_the_spec(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["sweep", "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "--scheduler" in text and "--workers" in text and '"grid"' in text
