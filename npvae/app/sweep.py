"""Sweeps: a grid of training runs, each an ordinary run folder, on any executor.

A sweep spec is a JSON object

    {"base": {"hidden": [64], "epochs": 30},
     "grid": {"beta": [0.5, 1, 4], "latent_dim": [2, 10], "seed": [0, 1, 2]},
     "runs": [{"beta": 8, "latent_dim": 10, "seed": 0}],
     "k": 100}

whose "base" and "grid" use the keys of a run's config.json (TrainConfig). Every
combination of the grid's values, then every entry of the optional "runs" list, is one
run: the base settings updated with the combination's. Every run's settings are checked
through TrainConfig.from_dict (so through the table in npvae.settings) before anything
runs; a bad spec is one UsageError naming the entry. "k" is the number of importance
samples of the held-out log-likelihood estimate (default 100).

A sweep into DIR writes

    DIR/.lock           held by the sweep for its whole life (one sweep writes DIR at a time)
    DIR/spec.json       the spec of the latest sweep into DIR
    DIR/results.csv     one row per run (see COLUMNS), rewritten atomically as runs finish
    DIR/runs/<name>/    one ordinary run folder per run (npvae train's files, so `npvae
                        evaluate`, `plot`, `train --resume` all work on it), plus
                        sweep.json: the run's result, written once it has finished
    DIR/figures/        rate_distortion.png (when beta varies) and <setting>.png for each
                        swept setting: every metric against it, mean and spread over seeds
                        (drawn by sweepfigures.py)

A run's <name> comes from the settings the spec varies (the grid's keys, then those the
"runs" entries set): beta=0.5_latent_dim=2_seed=0, made filesystem-safe.

Runs are independent tasks, `run_task(task)`, submitted to a concurrent.futures.Executor:
a local ProcessPoolExecutor by default, or whatever executor the caller passes (a Dask
cluster's `Client(...).get_executor()`). A task is a small dict (the settings, the run
folder, k), never arrays: the worker loads the data itself by name or path, caps BLAS
(and numba) at one thread, trains through `runs.train_run` exactly as `npvae train`
does, evaluates the final model (negative_elbo, log_likelihood, active_units with seed
0, and for data with known factors the MIG and the FactorVAE score, as `npvae evaluate`
does) and returns the row. A task never raises for a run that
went wrong: the row says "diverged" or "failed" with the error's first line, and the
other runs go on.

Fault tolerance. A run folder with a checkpoint is resumed from it, so a run whose worker
died (SIGKILL, out of memory, a lost machine) continues from its last epoch when the task
runs again: Dask reruns a task whose worker died on another worker by itself (up to its
allowed-failures); for the local pool a BrokenProcessPool is handled here, by waiting
for the pool's processes to end, starting a new pool and submitting the unfinished runs
again (a run whose worker died `max_crashes` times is recorded as failed). The run
folder's lock (lock.py) is released by the kernel when its holder dies, so the retry can
take it. Running the same sweep again skips every run whose sweep.json records the same
settings and k with status ok or diverged (a deterministic divergence would only
diverge again), resumes the interrupted ones and retries the failed ones. Training is
seeded and single-threaded, so the same spec gives the same numbers on any executor.
"""
from __future__ import annotations

import concurrent.futures as cf
import csv
import hashlib
import io as _io
import itertools
import json
import math
import os
import re
import signal
import socket
import sys
import threading
import time
import uuid
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..files import TEMP_PREFIX
from ..settings import Integer, SettingError, check_value
from . import runs
from .config import TrainConfig, UsageError, read_config_file
from .lock import FolderInUse, RunLock

SPEC_KEYS = ("base", "grid", "runs", "k")
DEFAULT_K = 100
MAX_RUNS = 10_000
RESULT_FILE = "sweep.json"  # in a run folder: the run's result, once it has finished
RESULTS_CSV, SPEC_FILE, RUNS_DIR, FIGURES_DIR = "results.csv", "spec.json", "runs", "figures"

# mig and factor_vae_score: for data with known factors (sprites), empty otherwise
METRICS = ("negative_elbo", "reconstruction", "kl", "log_likelihood", "active_units", "mig",
           "factor_vae_score")
RESULT_FIELDS = ("status",) + METRICS + ("k", "epochs_done", "resumed_at_epoch", "seconds",
                                         "worker", "error")
FINISHED = ("ok", "diverged")  # statuses a rerun skips


# ------------------------------------------------------------------ the spec


@dataclass(frozen=True)
class Run:
    """One run of a sweep: its folder name, the values of the varied settings, and the
    complete checked settings."""

    name: str
    settings: dict
    config: TrainConfig


@dataclass(frozen=True)
class Plan:
    """A checked sweep spec: its runs in spec order, the varied settings, and k."""

    runs: tuple
    varied: tuple
    k: int
    spec: dict

    @property
    def columns(self):
        """The columns of results.csv."""
        return ("run",) + self.varied + RESULT_FIELDS


def load_spec(spec, source=None):
    """A checked Plan from a spec: a dict, or the path of a JSON file holding one.

    Every run's settings go through TrainConfig.from_dict; any problem (an unknown key, a
    bad value, an empty list, two entries giving the same run) is a one-line UsageError
    naming the spec and the entry.
    """
    if isinstance(spec, (str, os.PathLike)):
        source = source or str(spec)
        if not Path(spec).exists():
            raise UsageError(f"cannot read sweep spec {spec}: no such file")
        spec = read_config_file(spec)
    source = source or "spec"
    if not isinstance(spec, dict):
        raise UsageError(f"{source}: expected a JSON object with keys {', '.join(SPEC_KEYS)}, "
                         f"got {type(spec).__name__}")
    unknown = sorted(set(spec) - set(SPEC_KEYS))
    if unknown:
        raise UsageError(f"{source}: unknown key {unknown[0]!r} (a sweep spec holds "
                         f"{', '.join(SPEC_KEYS)})")
    base = spec.get("base", {})
    grid = spec.get("grid", {})
    extra = spec.get("runs", [])
    TrainConfig.check_keys(base, f"{source}: base")
    TrainConfig.check_keys(grid, f"{source}: grid")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise UsageError(f"{source}: grid: {key} must be a non-empty list of values, "
                             f"got {values!r}")
    if not isinstance(extra, list):
        raise UsageError(f"{source}: runs must be a list of settings objects, got "
                         f"{type(extra).__name__}")
    for i, entry in enumerate(extra):
        TrainConfig.check_keys(entry, f"{source}: runs[{i}]")
    try:
        k = check_value(Integer(1), "k", spec.get("k", DEFAULT_K))
    except SettingError as err:
        raise UsageError(f"{source}: {err.detail}") from None
    n_grid = math.prod(len(v) for v in grid.values()) if grid else 0
    if n_grid + len(extra) > MAX_RUNS:
        raise UsageError(f"{source}: {n_grid + len(extra):,} runs; a sweep holds at most "
                         f"{MAX_RUNS:,}")

    entries = []  # (label, settings over base)
    for values in itertools.product(*grid.values()) if grid else ():
        combo = dict(zip(grid, values))
        entries.append(("grid " + ", ".join(f"{k_}={v!r}" for k_, v in combo.items()), combo))
    entries += [(f"runs[{i}]", entry) for i, entry in enumerate(extra)]
    if not entries:
        entries = [("base", {})]
    varied = list(grid)
    for entry in extra:
        varied += [key for key in entry if key not in varied]

    configs = []
    for label, combo in entries:
        configs.append((label, TrainConfig.from_dict({**base, **combo}, source=f"{source}: {label}")))
    seen = {}
    for label, config in configs:
        key = json.dumps(config.to_dict(), sort_keys=True)
        if key in seen:
            raise UsageError(f"{source}: {seen[key]} and {label} are the same run")
        seen[key] = label
    names = _run_names([c for _, c in configs], varied)
    plan_runs = [Run(name, {v: getattr(config, v) for v in varied}, config)
                 for (_, config), name in zip(configs, names)]
    return Plan(tuple(plan_runs), tuple(varied), k, spec)


def format_value(value):
    """A setting's value as it appears in a run's name: 0.5, 1 (for 1.0), 256-128, none."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, float):
        text = repr(value)
        return text[:-2] if text.endswith(".0") else text
    if isinstance(value, (list, tuple)):
        return "-".join(format_value(v) for v in value) or "none"
    return str(value)


_UNSAFE = re.compile(r"[^A-Za-z0-9.+-]+")
MAX_NAME = 200


def _run_names(configs, varied):
    """Filesystem-safe, distinct folder names: key=value joined by _ over the varied keys."""
    def raw(config):
        if not varied:
            return "run"
        return "_".join(f"{key}={_UNSAFE.sub('-', format_value(getattr(config, key)))}"
                        for key in varied)

    def digest(config):
        text = json.dumps({key: getattr(config, key) for key in varied}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:8]

    names = [raw(c) for c in configs]
    counts = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    out = []
    for name, config in zip(names, configs):
        if counts[name] > 1 or len(name) > MAX_NAME:  # two values made the same text
            name = f"{name[:MAX_NAME - 9]}-{digest(config)}"
        out.append(name)
    return out


# ------------------------------------------------------------------ one run (on a worker)


def run_task(task):
    """Train, evaluate and record one run of a sweep; returns its result row (a dict of
    RESULT_FIELDS). Runs on a worker: `task` is a plain dict (see `make_task`), the data
    are loaded here. Never raises for a run that went wrong: its row says so."""
    worker = f"{socket.gethostname()}:{os.getpid()}"
    try:
        with one_thread():
            row = _train_and_evaluate(task)
    except Exception as err:  # noqa: BLE001 -- the row reports it, the other runs go on
        row = result_row("failed", k=task["k"], error=first_line(err))
    row["worker"] = row.get("worker") or worker
    return row


def make_task(run, run_dir, k, run_figures=True, lock_wait=30.0):
    """The picklable dict `run_task` takes for `run` (settings, folder, k; no arrays)."""
    return {"name": run.name, "config": run.config.to_dict(), "run_dir": str(run_dir), "k": k,
            "cwd": os.getcwd(), "run_figures": bool(run_figures), "lock_wait": float(lock_wait),
            # A fresh token per submission, so no executor takes two submissions for one.
            "token": uuid.uuid4().hex}


def result_row(status, **values):
    row = dict.fromkeys(RESULT_FIELDS)
    row.update(status=status, **values)
    return row


def first_line(err):
    text = str(err).strip().splitlines()
    text = text[0] if text else ""
    if isinstance(err, UsageError):
        return text
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


@contextmanager
def one_thread():
    """One BLAS thread (threadpoolctl) and one numba thread: the workers share the cores,
    and the numbers do not depend on a thread count (a sum split between threads rounds
    differently)."""
    from threadpoolctl import threadpool_limits

    with ExitStack() as stack:
        stack.enter_context(threadpool_limits(limits=1, user_api="blas"))
        try:
            import numba
            previous = numba.get_num_threads()
            numba.set_num_threads(1)
            stack.callback(numba.set_num_threads, previous)
        except Exception:  # noqa: BLE001 -- no numba, or no threading layer: nothing to cap
            pass
        yield


def _train_and_evaluate(task):
    from ..fast.backend import get_backend, set_backend

    config = TrainConfig.from_dict(task["config"], source=f"run {task['name']}")
    run_dir, k = Path(task["run_dir"]), task["k"]
    previous = get_backend()
    try:
        runs.set_backend(config.backend)
        run_dir.mkdir(parents=True, exist_ok=True)
        with _take(run_dir, task["lock_wait"]):
            done = read_result(run_dir, config, k)
            if done is not None:  # finished by an earlier attempt
                return done
            return _train(run_dir, config, k, task)
    finally:
        set_backend(previous)


@contextmanager
def _take(run_dir, wait):
    """The run folder's lock, waiting up to `wait` seconds for a holder that is ending
    (the processes of a broken pool are stopped while their runs are handed out again)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            lock = runs.open_run(run_dir)
            break
        except FolderInUse:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.2)
    with lock:
        yield lock


def _train(run_dir, config, k, task):
    from ..evaluate import active_units, log_likelihood, negative_elbo
    from .commands import factor_scores

    checkpoint = _checkpoint_to_resume(run_dir, config)
    data, model, data_fingerprint = runs.training_inputs(_located(config, task["cwd"]), checkpoint)
    resumed = checkpoint.state.epoch if checkpoint else 0
    outcome = runs.train_run(run_dir, config, data, checkpoint, model, None, None,
                             data_fingerprint)
    h = outcome.history
    done = dict(k=k, epochs_done=len(h), resumed_at_epoch=resumed, seconds=float(sum(h.seconds)))
    if outcome.status == "diverged":
        row = result_row("diverged", error=first_line(outcome.error), **done)
    elif outcome.status != "finished":
        return result_row("failed", error=f"training stopped ({outcome.status})", **done)
    else:
        x = data.x_val
        loss, rec, kl = negative_elbo(outcome.model, x, seed=0)
        ll = float(np.mean(log_likelihood(outcome.model, x, k=k, seed=0)))
        n_active = active_units(outcome.model, x)[0]
        row = result_row("ok", negative_elbo=loss, reconstruction=rec, kl=kl, log_likelihood=ll,
                         active_units=int(n_active), **done)
        if data.factors_val is not None:
            scores = factor_scores(outcome.model, x, data)
            row.update(mig=scores["mig"], factor_vae_score=scores["factor_vae_score"])
        if task["run_figures"]:
            _, problem = runs.try_drawing_figures(outcome.model, data, outcome.history, run_dir,
                                                  config.seed)
            if problem:
                row["error"] = f"note: the run's figures could not be drawn ({problem})"
    row["worker"] = f"{socket.gethostname()}:{os.getpid()}"
    write_result(run_dir, config, k, row)
    return row


def _checkpoint_to_resume(run_dir, config):
    """The run folder's checkpoint to continue, or None for a fresh start (removing what
    an attempt killed before its first checkpoint left). UsageError when the folder
    holds a run of other settings than the spec's (beyond those a resume may change)."""
    from .checkpoints import load_checkpoint

    last = run_dir / runs.LAST_FILE
    if not last.exists():
        for name in (runs.CONFIG_FILE, runs.METRICS_FILE, runs.BEST_FILE, RESULT_FILE):
            (run_dir / name).unlink(missing_ok=True)
        return None
    checkpoint = load_checkpoint(last)
    check_same_run(run_dir, checkpoint.config, config)
    return checkpoint


def check_same_run(run_dir, saved, config):
    """UsageError unless the run saved in `run_dir` (its TrainConfig `saved`) is the one
    `config` describes, up to the settings a resume may change (epochs, lr, ...)."""
    changed = saved.changed_beyond_resume(config)
    if changed:
        key = changed[0]
        raise UsageError(f"{run_dir} holds a run with {key} {getattr(saved, key)!r}, but the "
                         f"spec says {getattr(config, key)!r}; remove the folder to redo the "
                         f"run, or sweep into another folder")


def _located(config, cwd):
    """`config` with a relative dataset file or data_dir made absolute against `cwd`
    (the folder the sweep was started in), for loading on a worker elsewhere."""
    dataset, data_dir = config.dataset, config.data_dir
    if str(dataset).lower().endswith((".npy", ".npz", ".csv")) and not os.path.isabs(dataset):
        dataset = os.path.join(cwd, dataset)
    if data_dir is not None and not os.path.isabs(data_dir):
        data_dir = os.path.join(cwd, data_dir)
    return replace(config, dataset=dataset, data_dir=data_dir)


def _jsonable(d):
    return json.loads(json.dumps(d))


def write_result(run_dir, config, k, row):
    """Record a finished run's result in its folder (sweep.json), atomically."""
    text = json.dumps({"config": config.to_dict(), "k": k, "result": row}, indent=2) + "\n"
    runs.write_text(Path(run_dir) / RESULT_FILE, text)


def read_result(run_dir, config, k):
    """The recorded row of a run that finished (ok or diverged) with these settings and
    this k, else None."""
    path = Path(run_dir) / RESULT_FILE
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        row = saved["result"]
        if (saved["config"] != _jsonable(config.to_dict()) or saved["k"] != k
                or row.get("status") not in FINISHED):
            return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return {**dict.fromkeys(RESULT_FIELDS), **{f: row.get(f) for f in RESULT_FIELDS}}


# ------------------------------------------------------------------ the sweep


def default_workers():
    """The number of cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


class _LocalPool:
    """A ProcessPoolExecutor (fresh 'spawn' processes, as Dask's are) that can be replaced
    when one of its processes dies."""

    def __init__(self, workers):
        import multiprocessing

        self.workers = workers
        self.context = multiprocessing.get_context("spawn")
        self.executor = None
        self.new()

    def new(self):
        self.executor = cf.ProcessPoolExecutor(max_workers=self.workers, mp_context=self.context)
        # The pool's {pid: process}; kept to learn after a breakage which process died
        # by itself and which the pool terminated (CPython detail: empty if absent).
        self.processes = getattr(self.executor, "_processes", None)
        if self.processes is None:
            self.processes = {}
        return self.executor

    def died(self):
        """pids of the processes that ended other than by the pool's own SIGTERM."""
        return {pid for pid, p in list(self.processes.items())
                if p.exitcode is not None and p.exitcode not in (0, -signal.SIGTERM)}

    def stop(self, kill=False):
        if self.executor is None:
            return
        if kill:
            for p in list(self.processes.values()):
                try:
                    p.terminate()
                except (OSError, ValueError, AttributeError):
                    pass
        self.executor.shutdown(wait=True, cancel_futures=True)
        self.executor = None


def sweep(spec, out, executor=None, *, workers=None, progress="none", run_figures=True,
          max_crashes=3, lock_wait=30.0):
    """Run every run of a sweep spec into folder `out`; returns the rows of results.csv.

    Parameters
    ----------
    spec : dict, or str / path of a JSON file
        {"base": {...}, "grid": {setting: [values]}, "runs": [{...}], "k": 100}; see the
        module docstring. It is checked whole before anything runs (UsageError).
    out : str or path
        The sweep folder: results.csv, figures/, runs/<name>/.
    executor : concurrent.futures.Executor, optional
        Where the runs go: any executor whose workers can import npvae and see `out` and
        the data at the same paths (a dask.distributed ``Client(...).get_executor()``, a
        ProcessPoolExecutor, ...). Default: a local pool of `workers` processes, replaced
        when one of them dies.
    workers : int, optional
        Processes of the default pool (default: the number of cores).
    progress : {"none", "auto", "bar", "lines"}
        How finished runs are counted on stderr (a tqdm bar or one line per run).
    run_figures : bool
        Draw each run's own figures into its folder, as `npvae train` does.
    max_crashes : int
        With the default pool: times a run's worker may die before the run is failed.
    lock_wait : float
        Seconds a task waits for a run folder whose previous holder is ending.

    Returns
    -------
    list of dict
        One per run in spec order: "run", the varied settings, then RESULT_FIELDS
        (status "ok", "diverged" or "failed"; the metrics are None unless ok).
    """
    plan = spec if isinstance(spec, Plan) else load_spec(spec)
    if executor is not None and workers is not None:
        raise UsageError("give an executor or a number of workers, not both")
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise UsageError(f"workers must be an integer >= 1, got {workers!r}")
    out = Path(out).absolute()
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder")
    try:
        (out / RUNS_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"cannot create sweep folder {out}: {err.strerror}") from None
    with RunLock(out).acquire():
        for folder in (out, out / FIGURES_DIR):  # what a killed sweep left (not the runs'
            for p in folder.glob(TEMP_PREFIX + "*"):  # files: a worker may still own them)
                p.unlink(missing_ok=True)
        return _Sweep(plan, out, progress).run(executor, workers, run_figures, max_crashes,
                                               lock_wait)


class _Sweep:
    def __init__(self, plan, out, progress):
        self.plan, self.out = plan, out
        self.results = {}  # name -> result row of a finished run
        self.progress_mode = progress
        self.skipped = 0

    def run_dir(self, run):
        return self.out / RUNS_DIR / run.name

    def run(self, executor, workers, run_figures, max_crashes, lock_wait):
        for run in self.plan.runs:
            row = read_result(self.run_dir(run), run.config, self.plan.k)
            if row is not None:
                self.results[run.name] = row
        self.skipped = len(self.results)
        pending = [r for r in self.plan.runs if r.name not in self.results]
        for run in pending:  # before anything runs: a folder holding another run is refused
            run_dir = self.run_dir(run)
            if (run_dir / runs.LAST_FILE).exists() and (run_dir / runs.CONFIG_FILE).exists():
                check_same_run(run_dir, runs.read_run_config(run_dir), run.config)
        runs.write_text(self.out / SPEC_FILE,
                        json.dumps(self.plan.spec, indent=2, default=_plain) + "\n")
        self.write_csv()
        self.bar = _RunProgress(self.progress_mode, len(self.plan.runs), self.skipped)
        try:
            if pending:
                tasks = {r.name: make_task(r, self.run_dir(r), self.plan.k, run_figures, lock_wait)
                         for r in pending}
                _execute(tasks, executor, workers, self.finished, max_crashes)
        finally:
            self.bar.close()
            self.write_csv()
        self.draw_figures()
        return self.rows()

    def finished(self, name, row):
        self.results[name] = row
        self.write_csv()
        self.bar.update(name, row)

    def rows(self):
        """Every run's row, in spec order; runs not yet finished have status "pending"."""
        out = []
        for run in self.plan.runs:
            row = self.results.get(run.name) or result_row("pending", k=self.plan.k)
            out.append({"run": run.name, **run.settings, **row})
        return out

    def write_csv(self):
        buf = _io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(self.plan.columns)
        for row in self.rows():
            writer.writerow([_cell(row[c]) for c in self.plan.columns])
        runs.write_text(self.out / RESULTS_CSV, buf.getvalue())

    def draw_figures(self):
        rows = [r for r in self.rows() if r["status"] == "ok"]
        if rows:
            from .sweepfigures import draw_sweep_figures

            draw_sweep_figures(rows, self.plan.varied, self.out / FIGURES_DIR, self.plan.k)


def _plain(value):
    """A NumPy scalar or array in a spec given as a dict, as JSON can hold it."""
    return value.tolist() if hasattr(value, "tolist") else str(value)


def _cell(value):
    """A results.csv cell: numbers exactly (repr), lists as JSON, None empty."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return repr(value)
    return json.dumps(value)


def _execute(tasks, executor, workers, finished, max_crashes):
    """Run `tasks` {name: task} on `executor` (default: a local pool), calling
    finished(name, row) in the caller's thread as each one ends. One loop for every
    executor; only the own pool is replaced when it breaks."""
    pool = _LocalPool(workers or default_workers()) if executor is None else None
    crashes = dict.fromkeys(tasks, 0)
    queue, idle_breaks, futures = list(tasks), 0, {}

    def fail(name, error):
        finished(name, result_row("failed", k=tasks[name]["k"], error=error))

    try:
        while queue:
            ex = pool.executor if pool else executor
            to_submit, queue, futures = queue, [], {}
            for i, name in enumerate(to_submit):
                try:
                    futures[ex.submit(run_task, tasks[name])] = name
                except cf.BrokenExecutor as err:
                    if pool is None:
                        fail(name, f"the executor is broken: {first_line(err)}")
                    else:  # the pool broke meanwhile: treated below, as a breakage
                        queue += to_submit[i:]
                        break
            broken, running = bool(queue), set()
            not_done = set(futures)
            while not_done:
                done, not_done = cf.wait(not_done, timeout=0.5, return_when=cf.FIRST_COMPLETED)
                running |= {futures[f] for f in not_done if f.running()}
                for f in done:
                    name = futures[f]
                    try:
                        row = f.result()
                    except cf.BrokenExecutor as err:
                        if pool is None:
                            fail(name, f"the executor broke: {first_line(err)}")
                        else:
                            broken = True
                            queue.append(name)
                    except cf.CancelledError:
                        fail(name, "cancelled by the executor")
                    except Exception as err:  # noqa: BLE001 -- e.g. Dask's KilledWorker
                        fail(name, first_line(err))
                    else:
                        finished(name, row)
            if broken:
                pool.stop()  # waits for every process of the broken pool to end
                blamed = _blame(queue, tasks, pool.died(), running)
                idle_breaks = 0 if blamed else idle_breaks + 1
                for name in blamed:
                    crashes[name] += 1
                for name in list(queue):
                    times = max(crashes[name], idle_breaks)
                    if times >= max_crashes:
                        queue.remove(name)
                        fail(name, f"its worker process died {times} times (killed, or out of "
                                   f"memory?)")
                if queue:
                    pool.new()
    except BaseException:
        for f in futures:
            f.cancel()
        if pool is not None:
            pool.stop(kill=True)
            pool = None
        raise
    finally:
        if pool is not None:
            pool.stop()


def _blame(queue, tasks, died, running):
    """The unfinished runs whose worker died: those whose run folder's lock names a dead
    process (a killed holder leaves its pid in .lock); else those the pool had started."""
    from .lock import LOCK_FILE

    blamed = []
    for name in queue:
        try:
            text = (Path(tasks[name]["run_dir"]) / LOCK_FILE).read_text()
            pid = int(text.split()[0]) if text.strip() else None
        except (OSError, ValueError, IndexError):
            pid = None
        if pid is not None and pid in died:
            blamed.append(name)
    return blamed or [name for name in queue if name in running]


class _RunProgress:
    """Counts finished runs: a tqdm bar on a terminal, else one line per run, or nothing."""

    def __init__(self, mode, total, done, stream=None):
        self.stream = stream if stream is not None else sys.stderr
        if mode == "auto":
            mode = "bar" if getattr(self.stream, "isatty", lambda: False)() else "lines"
        if mode not in ("bar", "lines", "none"):
            raise ValueError(f"progress mode must be auto, bar, lines or none, got {mode!r}")
        self.mode, self.total, self.done = mode, total, done
        self.bar = None
        if mode == "bar":
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=done, unit="run", desc="sweep",
                            file=self.stream, dynamic_ncols=True)

    def update(self, name, row):
        self.done += 1
        summary = _summary(row)
        if self.bar is not None:
            self.bar.set_postfix_str(f"{name}: {summary}", refresh=False)
            self.bar.update(1)
        elif self.mode == "lines":
            print(f"[{self.done}/{self.total}] {name}: {summary}", file=self.stream, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _summary(row):
    if row["status"] == "ok":
        return (f"ok, negative ELBO {row['negative_elbo']:.3f} (KL {row['kl']:.3f}), "
                f"{row['seconds']:.1f} s on {row['worker']}")
    return f"{row['status']}: {row['error']}"


# ------------------------------------------------------------------ the command


def connect(address):
    """A dask.distributed Client on the scheduler at `address`; UsageError when dask is
    not installed or the scheduler cannot be reached."""
    try:
        from distributed import Client
    except ImportError:
        raise UsageError("--scheduler needs dask.distributed: pip install 'npvae[dask]' "
                         "(or 'dask[distributed]')") from None
    try:
        return Client(address, timeout="10s")
    except (OSError, TimeoutError, ValueError) as err:
        raise UsageError(f"cannot reach the Dask scheduler at {address}: {first_line(err)}") from None


def command(args):
    """`npvae sweep SPEC --out DIR [--scheduler ADDRESS | --workers N]`; exit status 0 when
    every run is ok, 1 when one diverged or failed."""
    from .commands import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_TERMINATED, print_error

    plan = load_spec(args.spec)  # before anything runs, connects or is created
    quiet = args.quiet
    with ExitStack() as stack:
        executor, where = None, f"{args.workers or default_workers()} local worker processes"
        if args.scheduler:
            client = connect(args.scheduler)
            stack.callback(client.close)
            executor = client.get_executor(pure=False)
            where = f"the Dask cluster at {args.scheduler}"
        if not quiet:
            print(f"sweep: {len(plan.runs)} runs on {where} -> {args.out}", flush=True)
        terminated = stack.enter_context(_sigterm_as_interrupt())
        try:
            rows = sweep(plan, args.out, executor, workers=args.workers,
                         progress="none" if quiet else "auto",
                         run_figures=not args.no_run_figures)
        except KeyboardInterrupt:
            print_error(f"{'terminated' if terminated else 'interrupted'}; the finished runs "
                        f"are in {Path(args.out) / RESULTS_CSV}. Run the same command again to "
                        f"go on: finished runs are skipped, interrupted ones resume from their "
                        f"checkpoints")
            return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
    counts = {s: sum(r["status"] == s for r in rows) for s in ("ok", "diverged", "failed")}
    for row in rows:
        if row["status"] != "ok":
            print_error(f"run {row['run']} {row['status']}: {row['error']}")
    if not quiet:
        figures = Path(args.out) / FIGURES_DIR
        print(f"done: {counts['ok']} ok, {counts['diverged']} diverged, {counts['failed']} "
              f"failed; results in {Path(args.out) / RESULTS_CSV}"
              + (f", figures in {figures}" if counts["ok"] else ""))
    return EXIT_OK if counts["ok"] == len(rows) else EXIT_FAILED


@contextmanager
def _sigterm_as_interrupt():
    """SIGTERM raises KeyboardInterrupt in the main thread, so a terminated sweep stops
    its workers and leaves a results.csv, as Ctrl-C does. Yields a flag set by SIGTERM."""
    flag = []
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        flag.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGTERM, previous)
