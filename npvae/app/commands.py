"""What each `npvae` command does: `cmd_<name>(args) -> exit status`, args from the parser
in cli.py.

Exit statuses (see cli.py): 0 success; 1 the work itself failed (training diverged, a
gradient check failed); 2 a problem with the input or the environment (one line on
stderr, no traceback); 3 an internal error; 130 / 143 training stopped by Ctrl-C /
SIGTERM after saving a checkpoint.
"""
from __future__ import annotations

import contextlib
import json
import math
import signal
import sys
from pathlib import Path

import numpy as np

from ..files import atomic_write
from ..progress import make_progress
from ..settings import SETTINGS
from . import runs
from .checkpoints import load_checkpoint
from .config import TrainConfig, UsageError, read_config_file
from .rundata import check_model_fits, conditional_data, load_run_data

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143  # 128 + SIGINT, 128 + SIGTERM


# ------------------------------------------------------------------ settings


_ARCHITECTURE = {"hidden", "activation", "likelihood", "latent_dim", "config", "conditional"}


def flag_settings(args):
    """The settings the user set with flags (argparse leaves absent ones out)."""
    return {k: v for k, v in vars(args).items() if k in SETTINGS}


def resolve_config(args):
    """Defaults <- --config file <- flags, validated into a TrainConfig."""
    merged = TrainConfig().to_dict()
    if getattr(args, "config", None):
        # Checked on its own first, so an error names the file.
        from_file = TrainConfig.from_dict(read_config_file(args.config), source=args.config)
        merged = from_file.to_dict()
    merged.update(flag_settings(args))
    return TrainConfig.from_dict(merged, source="settings")


# Below this many parameters a training step's matrix products are so small that a second
# BLAS thread costs more than it saves: the default digits run took 16 s with one thread and
# 175 s with OpenBLAS's default of two on a busy 2-core machine.
SMALL_MODEL_PARAMS = 200_000


def blas_threads(n):
    """A context that caps the BLAS thread pool at n (threadpoolctl); n None: no change."""
    if n is None:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        raise UsageError("--threads needs the threadpoolctl package (pip install threadpoolctl)") from None
    return threadpool_limits(limits=n, user_api="blas")


def print_error(message):
    """One line on stderr, led by the program's name."""
    print(f"npvae: {message}", file=sys.stderr)


def print_notes(notes):
    for note in notes:
        print(f"note: {note}")


# ------------------------------------------------------------------ train


def _progress(args):
    return make_progress("none" if args.quiet else "auto", sys.stdout)


def _check_resume_flags(args):
    """UsageError for flags a resume cannot take (--config, --out)."""
    if getattr(args, "config", None) or args.out:
        raise UsageError("--resume continues a run as it was configured: drop --config and --out")


def _resume_config(args, checkpoint):
    """The run's settings with the flags applied; a flag other than --epochs, --lr,
    --clip-norm and --backend may only repeat the run's own value."""
    saved = checkpoint.config
    given = TrainConfig.from_dict({**saved.to_dict(), **flag_settings(args)}, source="settings")
    changed = saved.changed_beyond_resume(given)
    if changed:
        name = changed[0]
        raise UsageError(f"--{name.replace('_', '-')} cannot change when resuming (the run has "
                         f"{getattr(saved, name)!r}; only --epochs, --lr, --clip-norm, --backend "
                         f"can)")
    return given


def cmd_train(args):
    from ..train import catch_stop_signals

    with contextlib.ExitStack() as hold:
        checkpoint = None
        if args.resume:
            _check_resume_flags(args)
            run_dir = Path(args.resume)
            hold.enter_context(runs.open_run(run_dir))  # before reading: the latest checkpoint
            checkpoint = load_checkpoint(runs.model_path(run_dir))
            config = _resume_config(args, checkpoint)
        else:
            config = resolve_config(args)
        runs.set_backend(config.backend)
        data, model, data_fingerprint = runs.training_inputs(config, checkpoint)
        print_notes(data.notes)
        if checkpoint is None:
            run_dir, lock = runs.open_new_run(args.out, config.dataset)
            hold.enter_context(lock)
        if not args.quiet:
            _announce(model, data, config, checkpoint, run_dir)
        threads = args.threads
        if threads is None:
            threads = 1 if model.n_params < SMALL_MODEL_PARAMS else None
        with catch_stop_signals() as stop, blas_threads(threads):
            outcome = runs.train_run(run_dir, config, data, checkpoint, model, _progress(args),
                                     stop, data_fingerprint)
        if outcome.status != "finished":
            return _report_stop(outcome, run_dir, config, stop.signal)
        if not args.no_figures:
            _draw_figures_or_say_why(outcome.model, data, outcome.history, run_dir, config.seed)
    h = outcome.history
    if not args.quiet and len(h):
        print(f"done: epoch {h.epoch[-1]}, held-out negative ELBO {h.val_loss[-1]:.3f} nats "
              f"(reconstruction {h.val_rec[-1]:.3f}, KL {h.val_kl[-1]:.3f}); run folder {run_dir}")
    return EXIT_OK


def _announce(model, data, config, checkpoint, run_dir):
    """The lines that open a training run: the model, the data, the epochs, the folder."""
    done = 0 if checkpoint is None else checkpoint.state.epoch
    verb = f"resuming at epoch {done + 1} of" if checkpoint else "training for"
    classes = f", {data.n_classes} classes" if data.n_classes else ""
    print(f"{model}\n{data.name}: {data.x_train.shape[0]} train / "
          f"{data.x_val.shape[0]} held-out examples{classes}; {verb} {config.epochs} epochs "
          f"-> {run_dir}", flush=True)
    if checkpoint and done >= config.epochs:
        print(f"the run already has {done} epochs; pass a larger --epochs to train longer")


def _saved_at(saved):
    epochs, steps = saved
    if steps:
        return f"in epoch {epochs + 1} after step {steps}"
    return f"after epoch {epochs}" if epochs else "before the first epoch"


def _report_stop(outcome, run_dir, config, signum=None):
    """Say how an interrupted or diverged run can go on; return its exit status."""
    last = run_dir / runs.LAST_FILE
    if outcome.status == "interrupted":
        by = "terminated (SIGTERM)" if signum == signal.SIGTERM else "interrupted"
        print_error(f"{by} {_saved_at(outcome.saved)}; checkpoint saved to {last}. "
                    f"Continue with: npvae train --resume {run_dir}")
        return EXIT_TERMINATED if signum == signal.SIGTERM else EXIT_INTERRUPTED
    err = outcome.error
    # At least 10 times lower, and never above the default rate, which trains these models.
    lower = f"{min(config.lr / 10, TrainConfig().lr):.1g}"
    print_error(f"training diverged {err.where}: the {err.what} is {err.loss}; the last good "
                f"checkpoint, {last}, is kept ({_saved_at(outcome.saved)}). Continue it with a "
                f"learning rate at least 10 times lower (or add --clip-norm 10): "
                f"npvae train --resume {run_dir} --lr {lower}")
    return EXIT_FAILED


def _draw_figures_or_say_why(model, data, history, run_dir, seed):
    """Draw a finished run's figures; if they cannot be drawn, say so in one line."""
    notes, problem = runs.try_drawing_figures(model, data, history, run_dir, seed)
    if problem:
        print_error(f"the model is saved in {run_dir}, but its figures could not be drawn "
                    f"({problem}); draw them later with: npvae plot {run_dir}")
    print_notes(notes)


# ------------------------------------------------------------------ inspecting a model


def _model_and_data(args, need_data=True):
    """(model, config, run folder, RunData or None) for a RUN_OR_MODEL argument.

    config is None for a bare model file (no run settings) unless --dataset names the data.
    For a conditional model the held-out data come joined with their labels.
    """
    model, config, run_dir = runs.load_model(args.model, best=getattr(args, "best", False))
    dataset = getattr(args, "dataset", None)
    if config is None:
        if dataset is None:
            if need_data:
                raise UsageError(f"{args.model} carries no run settings: name the data with --dataset")
            return model, None, run_dir, None
        config = TrainConfig()
    if dataset is not None:
        config.dataset = dataset
        config.data_dir = None
    data = load_run_data(config) if need_data else None
    if data is not None:
        if _is_conditional(model):
            data = conditional_data(data, model.n_classes)
        check_model_fits(model, data, config.dataset)
    return model, config, run_dir, data


def _is_conditional(model):
    return hasattr(model, "n_classes")


def cmd_evaluate(args):
    from ..evaluate import log_likelihood, negative_elbo

    model, config, _, data = _model_and_data(args)
    runs.set_backend(config.backend)
    x = data.x_val if args.n is None else data.x_val[:args.n]
    loss, rec, kl = negative_elbo(model, x, seed=args.seed)
    ll = log_likelihood(model, x, k=args.k, seed=args.seed)
    result = {"model": str(runs.model_path(args.model, args.best)), "dataset": data.name,
              "examples": int(x.shape[0]), "negative_elbo": loss, "reconstruction": rec,
              "kl": kl, "log_likelihood": float(np.mean(ll)), "k": args.k}
    if data.factors_val is not None:
        result.update(factor_scores(model, x, data))
    if args.json:
        print(json.dumps(result))
        return EXIT_OK
    labelled = " with their labels" if data.n_classes else ""
    print(f"model            {result['model']}\n"
          f"data             {data.name}, {x.shape[0]} held-out examples{labelled}\n"
          f"negative ELBO    {loss:10.3f} nats per example\n"
          f"  reconstruction {rec:10.3f}   (-E_q log p(x|z))\n"
          f"  KL             {kl:10.3f}   (KL(q(z|x) || p(z)))\n"
          f"log p(x) (IWAE)  {result['log_likelihood']:10.3f}   (importance weighted, k = {args.k})")
    if data.factors_val is not None:
        gaps = ", ".join(f"{name} {gap:.2f}" for name, gap in result["mig_per_factor"].items())
        print(f"MIG              {result['mig']:10.3f}   (mutual information gap; per factor: {gaps})\n"
              f"FactorVAE score  {result['factor_vae_score']:10.3f}   (majority-vote accuracy; chance "
              f"{1 / len(data.factor_names):.2f})")
    return EXIT_OK


def factor_scores(model, x, data):
    """The disentanglement metrics of a model on held-out rows x of data with known factors
    (the first len(x) rows of data.factors_val), as result entries: mig, mig_per_factor
    (factor name -> its gap) and factor_vae_score."""
    from ..disentanglement import disentanglement_metrics

    scores = disentanglement_metrics(model, x, data.factors_val[:x.shape[0]])
    return {"mig": scores.mig.score,
            "mig_per_factor": dict(zip(data.factor_names, map(float, scores.mig.gaps))),
            "factor_vae_score": scores.factor_vae.score}


def _image_shape(args, model):
    """The image shape for a bare model file: --image-shape, else a square guess."""
    text = getattr(args, "image_shape", None)
    if text:
        try:
            h, w = (int(t) for t in text.lower().split("x"))
        except ValueError:
            raise UsageError(f"--image-shape {text!r}: expected HxW, e.g. 28x28") from None
        if h * w != model.input_dim:
            raise UsageError(f"--image-shape {text}: {h}x{w} = {h * w} pixels, the model has "
                             f"{model.input_dim}")
        return h, w
    side = int(round(math.sqrt(model.input_dim)))
    return (side, side) if side * side == model.input_dim else None


def cmd_sample(args):
    from .plots import class_samples, plot_class_rows, plot_images

    _check_image_path(args.out)
    model, config, run_dir, _ = _model_and_data(args, need_data=False)
    rng = np.random.default_rng(args.seed)
    n_classes = getattr(model, "n_classes", None)
    if args.label is not None:
        if n_classes is None:
            raise UsageError(f"--label needs a conditional model; {args.model} holds an "
                             f"unconditional one")
        if args.label >= n_classes:
            raise UsageError(f"--label {args.label}: the model knows the classes 0..{n_classes - 1}")
    per_class = n_classes is not None and args.label is None
    n = args.n if args.n is not None else (10 if per_class else 64)
    if per_class:
        x = class_samples(model, n, rng)  # (C n, D), class by class
        title = f"{n} samples per class from the prior (seed {args.seed})"
    elif args.label is not None:
        x = model.sample(n, y=args.label, rng=rng)
        title = f"{n} samples of class {args.label} from the prior (seed {args.seed})"
    else:
        x = model.sample(n, rng=rng)
        title = f"{n} samples from the prior (seed {args.seed})"
    if args.npy:
        atomic_write(args.npy, lambda f: np.save(f, x))
        rows = f" (rows class by class, {n} per class)" if per_class else ""
        print(f"wrote {args.npy}{rows}")
    if config is not None and not args.image_shape:
        shape = load_run_data(config).image_shape  # the run's own data knows its shape
    else:
        shape = _image_shape(args, model)
    if shape is None:
        if not args.npy:
            raise UsageError(f"no image shape for the model's {model.input_dim} outputs: "
                             f"pass --image-shape HxW or --npy FILE")
        print("note: no image shape, so no image written")
        return EXIT_OK
    if per_class:
        plot_class_rows(x, shape, args.out, n, title=title)
    else:
        plot_images(x, shape, args.out, title=title)
    print(f"wrote {args.out}")
    return EXIT_OK


def cmd_reconstruct(args):
    from .plots import plot_reconstructions

    _check_image_path(args.out)
    model, _, _, data = _model_and_data(args)
    if data.image_shape is None:
        raise UsageError(f"dataset {data.name!r} has no image shape to draw")
    x = data.x_val[:args.n]  # conditional: [x | onehot(y)]; the picture shows x
    plot_reconstructions(x[:, :model.input_dim], model.reconstruct(x), data.image_shape, args.out)
    print(f"wrote {args.out}")
    return EXIT_OK


def cmd_plot(args):
    run_dir = Path(args.run)
    if not (run_dir / runs.CONFIG_FILE).exists():
        raise UsageError(f"{run_dir} is not a run folder (no {runs.CONFIG_FILE})")
    args.model = str(run_dir)
    with runs.open_run(run_dir):  # the figures are run files: one writer at a time
        model, config, _, data = _model_and_data(args)
        history = runs.read_metrics(run_dir) if (run_dir / runs.METRICS_FILE).exists() else None
        written, notes = runs.draw_figures(model, data, history, run_dir, config.seed)
    for path in written:
        print(f"wrote {path}")
    print_notes(notes)
    return EXIT_OK


def _check_image_path(path):
    """UsageError now, before any work, when `path` names an image kind we cannot write."""
    from .plots import image_format

    try:
        image_format(path)
    except ValueError as err:
        raise UsageError(f"--out {err}") from None


# ------------------------------------------------------------------ sweep


def cmd_sweep(args):
    from .sweep import command

    return command(args)


# ------------------------------------------------------------------ gradcheck


def cmd_gradcheck(args):
    from ..gradcheck import check_model_gradients

    model, config, data = _gradcheck_subject(args)
    x = data.x_val[:args.batch].astype(np.float64)  # conditional: joined with the labels

    def check(h):
        return check_model_gradients(model, x, beta=config.beta, seed=config.seed, tol=args.tol,
                                     h=h, max_entries=None if args.full else args.max_entries)

    labelled = " with their labels" if data.n_classes else ""
    print(f"{model}\n{x.shape[0]} examples of {data.name}{labelled}, beta {config.beta:g}, "
          f"step h {args.h:g}")
    report = check(args.h)
    print(report)
    if not report.passed:
        # A wrong derivative is wrong at every step size. A mismatch that vanishes at h / 10
        # came from a kink (a ReLU input within h of zero) between theta - h and theta + h.
        failed = [r.name for r in report.results if not r.passed]
        retry = check(args.h / 10)
        print(f"\nrechecking with step h {args.h / 10:g}, ten times closer to the kinks of "
              f"piecewise-linear activations:")
        print(retry)
        if all(retry[name].passed for name in failed):
            print("the mismatches vanish at the smaller step, as a kink crossing does: the "
                  "analytic gradients agree with finite differences")
        report = retry
    return EXIT_OK if report.passed else EXIT_FAILED


def _gradcheck_subject(args):
    """(float64 model, TrainConfig, RunData) to check: the configured model, fresh, or the
    saved one cast to float64, with the data it reads."""
    from ..io import load_into, model_from_config

    if args.model is not None:
        given = set(flag_settings(args)) | ({"config"} if getattr(args, "config", None) else set())
        architecture = sorted(given & _ARCHITECTURE)
        if architecture:
            raise UsageError(f"--{architecture[0].replace('_', '-')} has no effect on a saved model")
        trained, config, _, _ = _model_and_data(args, need_data=False)
        merged = (config or TrainConfig()).to_dict()
        merged.update(flag_settings(args))
        config = TrainConfig.from_dict(merged, source="settings")
        cfg = trained.get_config()
        cfg["dtype"] = "float64"
        model = model_from_config(cfg)
        load_into(model, {k: v.astype(np.float64) for k, v in trained.params.items()})
    else:
        config = resolve_config(args)
        model = None
    runs.set_backend(config.backend)
    data = load_run_data(config)
    if _is_conditional(model) if model is not None else config.conditional:
        data = conditional_data(data, getattr(model, "n_classes", None))
    if model is None:
        model = runs.fresh_model(config, data, dtype=np.float64)
    check_model_fits(model, data, config.dataset)
    return model, config, data
