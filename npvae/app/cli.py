"""The `npvae` command line: train, evaluate, sample, reconstruct, plot, gradcheck.

Each subcommand is one small function `cmd_<name>(args) -> exit status`. Exit statuses:
0 success; 1 the work itself failed (training diverged, a gradient check failed);
2 a usage error (bad flag or setting, missing run folder: one line on stderr, no
traceback); 130 training stopped by Ctrl-C after saving a checkpoint.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
from pathlib import Path

import numpy as np

from ..settings import SETTINGS, Integer, Number, SettingError, check_value
from . import runs
from .runs import TrainConfig, UsageError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

TRAIN_EPILOG = """\
Settings come from the defaults, then a JSON file (--config, keys as in a run's
config.json: dataset, hidden, latent_dim, lr, ...), then the flags given here; a later
source overrides an earlier one.

The default latent_dim is 2: the one size whose latent space can be drawn as it is, so
the run gets the decoded-grid (manifold) figure and an unprojected latent scatter. Use 8
to 20 for sharper reconstructions and a better ELBO.

Ctrl-C stops after the step under way and saves model.npz; `npvae train --resume RUN`
continues exactly where it stopped (the same parameters, bit for bit, as a run never
interrupted). A second Ctrl-C aborts at once without saving.

--conditional (config key "conditional": true) trains a conditional VAE: encoder and
decoder both see each example's one-hot class label, so samples can be drawn per class.
It needs a labelled dataset (digits, mnist, fashion-mnist, or a file with labels); the run
also gets figures/classes.png, one row of samples from the prior per class, and
`npvae sample RUN --label C` draws class C.

examples:
  npvae train
  npvae train --hidden 512,256 --latent-dim 10 --epochs 100 --out runs/digits-z10
  npvae train --dataset mnist --binarize dynamic --hidden 400 --latent-dim 20 --batch-size 128
  npvae train --config settings.json --seed 3
  npvae train --resume runs/digits-z10 --epochs 200
  npvae train --conditional --latent-dim 8 --out runs/digits-cvae
"""


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line (exit 2) instead of usage plus error."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# ------------------------------------------------------------------ flag types


def _checked(name, constraint):
    """An argparse type: the flag's text read and checked by `constraint` (npvae.settings),
    so a bad flag gets the message a bad value passed to fit or a config file gets."""
    def parse(text):
        try:
            return check_value(constraint, name, constraint.parse(text))
        except SettingError as err:
            raise argparse.ArgumentTypeError(err.detail) from None
    parse.__name__ = name
    return parse


def _setting(name):
    """The argparse type of a training setting's flag: its constraint in SETTINGS."""
    return _checked(name, SETTINGS[name])


def _choices(name):
    """The metavar listing a OneOf setting's names, as argparse's choices= would."""
    options = getattr(SETTINGS[name], "inner", SETTINGS[name]).options
    return "{" + ",".join(options) + "}"


_POSITIVE, _NONNEGATIVE, _ABOVE_ZERO = Integer(1), Integer(0), Number(0, low_open=True)


# ------------------------------------------------------------------ the parser


def _add_model_flags(p):
    """Architecture and data flags shared by train and gradcheck (default: absent)."""
    S = argparse.SUPPRESS
    d = TrainConfig()
    p.add_argument("--config", metavar="FILE", default=S,
                   help="JSON file of settings (keys as in config.json); flags override it")
    p.add_argument("--dataset", metavar="NAME", default=S,
                   help=f"digits, mnist, fashion-mnist, or a .npy/.npz/.csv file (default {d.dataset}: "
                        "built in, no download)")
    p.add_argument("--data-dir", metavar="DIR", default=S, help="folder holding MNIST-style IDX files")
    p.add_argument("--binarize", type=_setting("binarize"), metavar=_choices("binarize"), default=S,
                   help="binarise pixels: static (one draw at load), threshold (x > 0.5), dynamic "
                        f"(a fresh draw every batch) (default {d.binarize})")
    p.add_argument("--hidden", metavar="SIZES", type=_setting("hidden"), default=S,
                   help=f"encoder hidden sizes, e.g. 400 or 256,128; the decoder mirrors them "
                        f"(default {','.join(map(str, d.hidden))})")
    p.add_argument("--activation", type=_setting("activation"), metavar=_choices("activation"), default=S,
                   help=f"hidden-layer activation (default {d.activation})")
    p.add_argument("--likelihood", type=_setting("likelihood"), metavar=_choices("likelihood"), default=S,
                   help=f"p(x|z) (default {d.likelihood})")
    p.add_argument("--latent-dim", type=_setting("latent_dim"), metavar="M", default=S,
                   help=f"size of z (default {d.latent_dim}: the latent space can be drawn)")
    p.add_argument("--beta", type=_setting("beta"), metavar="BETA", default=S,
                   help=f"weight of the KL term in the objective (default {d.beta:g})")
    p.add_argument("--seed", type=_setting("seed"), metavar="S", default=S,
                   help=f"seeds the initial weights, the shuffling and the noise (default {d.seed})")
    p.add_argument("--backend", type=_setting("backend"), metavar=_choices("backend"), default=S,
                   help="compute backend, if this build offers a choice (default: the library's)")
    p.add_argument("--conditional", action=argparse.BooleanOptionalAction, default=S,
                   help="a conditional VAE: encoder and decoder also read the one-hot class "
                        "label (needs a labelled dataset: digits, mnist, fashion-mnist) "
                        "(default: off)")


def _add_schedule_flags(p):
    S = argparse.SUPPRESS
    d = TrainConfig()
    p.add_argument("--epochs", type=_setting("epochs"), metavar="N", default=S,
                   help=f"total number of epochs (default {d.epochs})")
    p.add_argument("--batch-size", type=_setting("batch_size"), metavar="B", default=S,
                   help=f"examples per step (default {d.batch_size})")
    p.add_argument("--lr", type=_setting("lr"), default=S,
                   help=f"Adam learning rate (default {d.lr:g})")
    p.add_argument("--clip-norm", type=_setting("clip_norm"), metavar="N", default=S,
                   help="clip the global gradient norm to N (default: no clipping)")
    p.add_argument("--samples", dest="n_samples", type=_setting("n_samples"), metavar="L", default=S,
                   help=f"Monte Carlo samples of z per example (default {d.n_samples}); the "
                        "k of the iwae objective")
    p.add_argument("--objective", type=_setting("objective"), metavar=_choices("objective"), default=S,
                   help="elbo: the L-sample average ELBO; iwae: the importance-weighted bound "
                        f"over the --samples draws (default {d.objective})")
    p.add_argument("--free-bits", type=_setting("free_bits"), metavar="NATS", default=S,
                   help="floor each latent dimension's batch-average KL at NATS "
                        f"(default {d.free_bits:g}: off)")
    p.add_argument("--warmup-epochs", type=_setting("warmup_epochs"), metavar="N", default=S,
                   help="raise the KL weight linearly from 0 to --beta over N epochs "
                        f"(default {d.warmup_epochs}: off)")


def build_parser():
    parser = ArgumentParser(
        prog="npvae",
        description="Train and inspect variational autoencoders written in NumPy.",
        epilog="Run `npvae COMMAND --help` for the flags of each command. "
               "`npvae train` alone trains on the built-in digits in seconds.")
    from .. import __version__
    parser.add_argument("--version", action="version", version=f"npvae {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                parser_class=ArgumentParser)

    p = sub.add_parser("train", help="train a VAE into a run folder",
                       description="Train a VAE and write a run folder: config.json, metrics.csv,\n"
                                   "model.npz (latest), best.npz (best validation loss), figures/.",
                       epilog=TRAIN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_model_flags(p)
    _add_schedule_flags(p)
    p.add_argument("--out", metavar="DIR", default=None,
                   help="run folder to create (default runs/<dataset>-<date>-<time>)")
    p.add_argument("--resume", metavar="RUN", default=None,
                   help="continue the run in RUN from its model.npz; only --epochs, --lr, "
                        "--clip-norm and --backend may change")
    p.add_argument("--threads", type=_checked("threads", _POSITIVE), metavar="N", default=None,
                   help="cap the BLAS threads (default: 1 for models under "
                        f"{SMALL_MODEL_PARAMS:,} parameters, whose matrix products are too small "
                        "to share between threads; BLAS decides for larger ones)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--no-figures", action="store_true", help="skip drawing the figures")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="held-out negative ELBO and importance-weighted log p(x)",
                       description="Evaluate a trained model on its run's held-out split: the "
                                   "negative ELBO with its reconstruction and KL parts, and the "
                                   "importance-weighted estimate of log p(x) with k samples.")
    p.add_argument("model", metavar="RUN_OR_MODEL", help="a run folder or a .npz model file")
    p.add_argument("--best", action="store_true", help="use the run's best.npz, not model.npz")
    p.add_argument("--k", type=_checked("k", _POSITIVE), default=1000,
                   help="importance samples per example (default 1000)")
    p.add_argument("--n", type=_checked("n", _POSITIVE), default=None, metavar="N",
                   help="evaluate the first N held-out examples only (default all)")
    p.add_argument("--dataset", metavar="NAME", default=None,
                   help="dataset to evaluate on (default: the run's; required for a bare model file)")
    p.add_argument("--seed", type=_setting("seed"), default=0, help="seed of the noise (default 0)")
    p.add_argument("--json", action="store_true", help="print the numbers as one JSON object")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("sample", help="decode draws from the prior",
                       description="Decode n draws z ~ N(0, I) and save them as an image grid "
                                   "(and, with --npy, as an array of decoder means). A "
                                   "conditional model draws one row per class, or with "
                                   "--label C class C only.")
    p.add_argument("model", metavar="RUN_OR_MODEL", help="a run folder or a .npz model file")
    p.add_argument("-n", type=_checked("n", _POSITIVE), default=None,
                   help="number of samples (default 64); for a conditional model without "
                        "--label, samples per class (default 10)")
    p.add_argument("--label", type=_checked("label", _NONNEGATIVE), metavar="C", default=None,
                   help="conditional model: draw every sample from class C (default: one row "
                        "per class)")
    p.add_argument("--seed", type=_setting("seed"), default=0, help="seed of the draws (default 0)")
    p.add_argument("--out", metavar="PNG", default="samples.png", help="image file (default samples.png)")
    p.add_argument("--npy", metavar="FILE", default=None,
                   help="also save the (n, D) means as .npy (one row per class: class by class)")
    p.add_argument("--best", action="store_true", help="use the run's best.npz")
    p.add_argument("--image-shape", metavar="HxW", default=None,
                   help="image height and width for a bare model file, e.g. 28x28 (default: guessed)")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("reconstruct", help="reconstruct held-out examples",
                       description="Encode held-out examples, decode their posterior means, and "
                                   "save originals beside reconstructions.")
    p.add_argument("model", metavar="RUN_OR_MODEL", help="a run folder or a .npz model file")
    p.add_argument("-n", type=_checked("n", _POSITIVE), default=20, help="number of examples (default 20)")
    p.add_argument("--dataset", metavar="NAME", default=None,
                   help="dataset to draw examples from (default: the run's)")
    p.add_argument("--out", metavar="PNG", default="reconstructions.png",
                   help="image file (default reconstructions.png)")
    p.add_argument("--best", action="store_true", help="use the run's best.npz")
    p.set_defaults(func=cmd_reconstruct)

    p = sub.add_parser("plot", help="redraw the figures of a run",
                       description="Redraw every figure of a run folder into RUN/figures from its "
                                   "model.npz, metrics.csv and dataset.")
    p.add_argument("run", metavar="RUN", help="a run folder")
    p.add_argument("--best", action="store_true", help="draw from best.npz instead of model.npz")
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("gradcheck", help="finite-difference check of a model's gradients",
                       description="Build the configured model in float64 (or load RUN_OR_MODEL and "
                                   "cast it), and compare its analytic gradients with central "
                                   "differences on a small batch of the dataset. Prints one line "
                                   "per parameter; exits 1 if any parameter fails.")
    p.add_argument("model", metavar="RUN_OR_MODEL", nargs="?", default=None,
                   help="check a trained model instead of a freshly built one")
    _add_model_flags(p)
    p.add_argument("--batch", type=_checked("batch", _POSITIVE), default=4, help="examples in the batch (default 4)")
    p.add_argument("--max-entries", type=_checked("max_entries", _POSITIVE), default=20, metavar="N",
                   help="random entries checked per parameter (default 20)")
    p.add_argument("--full", action="store_true", help="check every entry (slow for big layers)")
    p.add_argument("--tol", type=_checked("tol", _ABOVE_ZERO), default=1e-6,
                   help="largest relative error that passes (default 1e-6)")
    p.add_argument("--h", type=_checked("h", _ABOVE_ZERO), default=1e-5,
                   help="finite-difference step (default 1e-5); a failure is rechecked at h/10, "
                        "so a ReLU kink crossed by the step is not taken for a wrong gradient")
    p.set_defaults(func=cmd_gradcheck)
    return parser


# ------------------------------------------------------------------ settings


_RESUMABLE = {"epochs", "lr", "clip_norm", "backend"}
_ARCHITECTURE = {"hidden", "activation", "likelihood", "latent_dim", "config", "conditional"}
_NOT_SETTINGS = {"command", "func", "out", "resume", "quiet", "no_figures", "config", "model",
                 "batch", "max_entries", "full", "tol", "h", "threads"}


def flag_settings(args):
    """The TrainConfig keys the user set with flags (argparse leaves absent ones out)."""
    return {k: v for k, v in vars(args).items() if k not in _NOT_SETTINGS}


def resolve_config(args):
    """Defaults <- --config file <- flags, validated into a TrainConfig."""
    merged = TrainConfig().to_dict()
    if getattr(args, "config", None):
        # Checked on its own first, so an error names the file.
        from_file = TrainConfig.from_dict(runs.read_config_file(args.config), source=args.config)
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


def _err(message):
    print(f"npvae: {message}", file=sys.stderr)


# ------------------------------------------------------------------ train


def _progress(args):
    from ..progress import make_progress

    return make_progress("none" if args.quiet else "auto", sys.stdout)


def _prepare_resume(args):
    """(run folder, checkpoint, config) for --resume, with the allowed overrides applied."""
    run_dir = Path(args.resume)
    if not run_dir.is_dir():
        raise UsageError(f"--resume {run_dir}: no such run folder")
    if getattr(args, "config", None) or args.out:
        raise UsageError("--resume continues a run as it was configured: drop --config and --out")
    changed = sorted(set(flag_settings(args)) - _RESUMABLE)
    if changed:
        raise UsageError(f"--{changed[0].replace('_', '-')} cannot change when resuming "
                         f"(only --epochs, --lr, --clip-norm, --backend can)")
    checkpoint = runs.load_checkpoint(runs.model_path(run_dir))
    merged = checkpoint.config.to_dict()
    merged.update(flag_settings(args))
    config = TrainConfig.from_dict(merged, source="settings")
    return run_dir, checkpoint, config


def cmd_train(args):
    from ..train import catch_sigint

    if args.resume:
        run_dir, checkpoint, config = _prepare_resume(args)
    else:
        checkpoint, config = None, resolve_config(args)
    runs.set_backend(config.backend)
    data = runs.load_run_data(config)
    if config.conditional:
        data = runs.conditional_data(data, checkpoint.model.n_classes if checkpoint else None)
    if checkpoint is None:
        run_dir = runs.prepare_out_dir(args.out) if args.out else runs.new_run_dir("runs", config.dataset)
    done = 0 if checkpoint is None else checkpoint.state.epoch
    if not args.quiet:
        model_desc = checkpoint.model if checkpoint else _fresh_model(config, data)
        verb = f"resuming at epoch {done + 1} of" if checkpoint else "training for"
        classes = f", {data.n_classes} classes" if data.n_classes else ""
        print(f"{model_desc}\n{data.name}: {data.x_train.shape[0]} train / "
              f"{data.x_val.shape[0]} held-out examples{classes}; {verb} {config.epochs} epochs "
              f"-> {run_dir}", flush=True)
        if checkpoint and done >= config.epochs:
            print(f"the run already has {done} epochs; pass a larger --epochs to train longer")

    threads = args.threads
    if threads is None:
        n_params = (checkpoint.model if checkpoint else _fresh_model(config, data)).n_params
        threads = 1 if n_params < SMALL_MODEL_PARAMS else None
    with catch_sigint() as stop, blas_threads(threads):
        outcome = runs.train_run(run_dir, config, data, checkpoint, _progress(args), stop)

    if outcome.status == "interrupted":
        st = outcome.state
        where = (f"in epoch {st.epoch + 1} after step {st.step}" if st.step
                 else f"after epoch {st.epoch}")
        _err(f"interrupted {where}; checkpoint saved to {run_dir / runs.LAST_FILE}. "
             f"Continue with: npvae train --resume {run_dir}")
        return EXIT_INTERRUPTED
    if outcome.status == "diverged":
        err, done = outcome.error, outcome.state.epoch
        kept = (f"the last good checkpoint, {run_dir / runs.LAST_FILE}, is kept "
                f"({f'after epoch {done}' if done else 'before the first epoch'})")
        _err(f"training diverged at epoch {err.epoch}, step {err.step}: the loss is {err.loss}; "
             f"{kept}. Try a lower learning rate, e.g. --lr {config.lr / 3:.1g} "
             f"(or --clip-norm 10): npvae train --resume {run_dir} --lr {config.lr / 3:.1g}")
        return EXIT_FAILED
    if not args.no_figures:
        written, notes = _draw_figures(outcome.model, data, outcome.history, run_dir, config.seed)
        for note in notes:
            print(f"note: {note}")
    h = outcome.history
    if not args.quiet and len(h):
        print(f"done: epoch {h.epoch[-1]}, held-out negative ELBO {h.val_loss[-1]:.3f} nats "
              f"(reconstruction {h.val_rec[-1]:.3f}, KL {h.val_kl[-1]:.3f}); run folder {run_dir}")
    return EXIT_OK


def _fresh_model(config, data, dtype=np.float32):
    """The untrained model `config` describes for `data` (conditional: over its classes)."""
    return config.build_model(data.input_dim, dtype=dtype, n_classes=data.n_classes)


def _draw_figures(model, data, history, run_dir, seed):
    from .plots import draw_run_figures

    return draw_run_figures(model, data.x_val, data.y_val, data.image_shape, history,
                            Path(run_dir) / runs.FIGURES_DIR, seed=seed)


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
    data = runs.load_run_data(config) if need_data else None
    if data is not None:
        if _is_conditional(model):
            data = runs.conditional_data(data, model.n_classes)
        runs.check_model_fits(model, data, config.dataset)
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
    return EXIT_OK


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
        np.save(args.npy, x)
        rows = f" (rows class by class, {n} per class)" if per_class else ""
        print(f"wrote {args.npy}{rows}")
    if config is not None and not args.image_shape:
        shape = runs.load_run_data(config).image_shape  # the run's own data knows its shape
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
    model, config, _, data = _model_and_data(args)
    history = runs.read_metrics(run_dir) if (run_dir / runs.METRICS_FILE).exists() else None
    written, notes = _draw_figures(model, data, history, run_dir, config.seed)
    for path in written:
        print(f"wrote {path}")
    for note in notes:
        print(f"note: {note}")
    return EXIT_OK


# ------------------------------------------------------------------ gradcheck


def cmd_gradcheck(args):
    from ..gradcheck import check_model_gradients
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
    data = runs.load_run_data(config)
    if _is_conditional(model) if model is not None else config.conditional:
        data = runs.conditional_data(data, getattr(model, "n_classes", None))
    if model is None:
        model = _fresh_model(config, data, dtype=np.float64)
    runs.check_model_fits(model, data, config.dataset)
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


# ------------------------------------------------------------------ entry point


def main(argv=None):
    """Run the command line with `argv` (default sys.argv[1:]); returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UsageError as err:
        _err(f"error: {err}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        _err("interrupted")
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
