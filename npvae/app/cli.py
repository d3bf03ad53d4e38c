"""The `npvae` command line: its parser and entry point (`main`).

Subcommands: train, evaluate, sample, reconstruct, plot, gradcheck, sweep; what each does is in
commands.py (`cmd_<name>(args) -> exit status`). Every flag that sets a training setting
checks its text through the table in npvae.settings, so a bad value gets the message fit
and a config file give it. Exit statuses: 0 success; 1 the work itself failed (training
diverged, a gradient check failed); 2 a problem with the input or the environment (a bad
flag, setting or file, a run folder in use, a size above npvae's caps, a file that cannot
be written: one line on stderr, no traceback); 3 an internal error (one line, and the
path of the full report); 130 training stopped by Ctrl-C, 143 by SIGTERM, after saving a
checkpoint.
"""
from __future__ import annotations

import argparse
import sys

from ..settings import SETTINGS, Integer, Number, SettingError, check_value
from . import commands
from ..limits import LimitError
from .commands import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE, SMALL_MODEL_PARAMS
from .config import TrainConfig, UsageError
from .errors import describe, write_report

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
It needs a labelled dataset (digits, mnist, fashion-mnist, sprites, or a file with labels);
the run also gets figures/classes.png, one row of samples from the prior per class, and
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
                   help="digits, mnist, fashion-mnist, sprites (generated, with known factors), "
                        f"or a .npy/.npz/.csv file (default {d.dataset}: built in, no download)")
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
                   help=f"weight of the KL term in the objective; of the total correlation "
                        f"under --objective tcvae (default {d.beta:g})")
    p.add_argument("--seed", type=_setting("seed"), metavar="S", default=S,
                   help=f"seeds the initial weights, the shuffling and the noise (default {d.seed})")
    p.add_argument("--backend", type=_setting("backend"), metavar=_choices("backend"), default=S,
                   help="compute backend, if this build offers a choice (default: the library's)")
    p.add_argument("--conditional", action=argparse.BooleanOptionalAction, default=S,
                   help="a conditional VAE: encoder and decoder also read the one-hot class "
                        "label (needs a labelled dataset: digits, mnist, fashion-mnist, sprites) "
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
                        "over the --samples draws; tcvae: beta-TCVAE, the KL split into "
                        "mutual information, total correlation and dimension-wise KL, weighed "
                        f"--alpha, --beta, --gamma (default {d.objective})")
    p.add_argument("--alpha", type=_setting("alpha"), metavar="A", default=S,
                   help="tcvae: weight of the index-code mutual information "
                        f"(default {d.alpha:g})")
    p.add_argument("--gamma", type=_setting("gamma"), metavar="G", default=S,
                   help=f"tcvae: weight of the dimension-wise KL (default {d.gamma:g})")
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
    for add in (_add_train, _add_evaluate, _add_sample, _add_reconstruct, _add_plot, _add_gradcheck,
                _add_sweep):
        add(sub)
    return parser


def _add_train(sub):
    """The `npvae train` parser."""
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
    p.set_defaults(func=commands.cmd_train)


def _add_evaluate(sub):
    """The `npvae evaluate` parser."""
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
    p.set_defaults(func=commands.cmd_evaluate)


def _add_sample(sub):
    """The `npvae sample` parser."""
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
    p.set_defaults(func=commands.cmd_sample)


def _add_reconstruct(sub):
    """The `npvae reconstruct` parser."""
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
    p.set_defaults(func=commands.cmd_reconstruct)


def _add_plot(sub):
    """The `npvae plot` parser."""
    p = sub.add_parser("plot", help="redraw the figures of a run",
                       description="Redraw every figure of a run folder into RUN/figures from its "
                                   "model.npz, metrics.csv and dataset.")
    p.add_argument("run", metavar="RUN", help="a run folder")
    p.add_argument("--best", action="store_true", help="draw from best.npz instead of model.npz")
    p.set_defaults(func=commands.cmd_plot)


def _add_gradcheck(sub):
    """The `npvae gradcheck` parser."""
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
    p.set_defaults(func=commands.cmd_gradcheck)


SWEEP_EPILOG = """\
SPEC.json is a JSON object:
  {"base": {"hidden": [64], "epochs": 30},
   "grid": {"beta": [0.5, 1, 4], "latent_dim": [2, 10], "seed": [0, 1, 2]},
   "runs": [{"beta": 8, "latent_dim": 10, "seed": 0}],
   "k": 100}
base, grid and runs use the keys of a run's config.json. Every combination of the grid's
values (and every entry of runs) is one run over the base settings; all are checked before
anything runs. k is the number of importance samples of the log-likelihood (default 100).

DIR gets results.csv (one row per run: the varied settings, status ok / diverged / failed,
held-out negative ELBO, reconstruction, KL, log p(x), active units, seconds, worker),
runs/<name>/ (one ordinary run folder per run, e.g. runs/beta=0.5_latent_dim=2_seed=0) and
figures/ (the rate-distortion curve over beta, each metric against each swept setting).

Running the same command again skips the finished runs and resumes the interrupted ones
from their checkpoints; a run whose worker died is resumed on another one.

With --scheduler the runs go to a Dask cluster (pip install 'npvae[dask]'): start
`dask scheduler` on one machine and `dask worker tcp://HOST:8786` on each of the others.
Every worker needs npvae installed and DIR and any data file at the same path (a shared
file system); named datasets (mnist, ...) are loaded or downloaded on the worker.

examples:
  npvae sweep spec.json --out sweeps/beta
  npvae sweep spec.json --out sweeps/beta --workers 4
  npvae sweep spec.json --out /shared/sweeps/beta --scheduler tcp://host-a:8786
"""


def _add_sweep(sub):
    """The `npvae sweep` parser."""
    p = sub.add_parser("sweep", help="train a grid of runs on local processes or a Dask cluster",
                       description="Train every run of a sweep spec, each into its own run folder "
                                   "under DIR/runs, on a pool of local processes or a Dask "
                                   "cluster; write DIR/results.csv and DIR/figures.",
                       epilog=SWEEP_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("spec", metavar="SPEC.json", help="the sweep spec (see below)")
    p.add_argument("--out", metavar="DIR", required=True,
                   help="the sweep folder (created if need be; an existing one is continued)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS", default=None,
                       help="run on the Dask cluster of this scheduler, e.g. tcp://host:8786")
    where.add_argument("--workers", type=_checked("workers", _POSITIVE), metavar="N", default=None,
                       help="local worker processes (default: the number of cores)")
    p.add_argument("--no-run-figures", action="store_true",
                   help="skip each run's own figures (the sweep's figures are still drawn)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=commands.cmd_sweep)


# ------------------------------------------------------------------ entry point


def main(argv=None):
    """Run the command line with `argv` (default sys.argv[1:]); returns the exit status.

    Whatever goes wrong ends in one line on stderr: a problem the user can fix (a bad
    setting or file, a folder in use, a size above a cap, a file that cannot be written)
    with exit status 2; anything unexpected with status 3 and the path of a file holding
    the full report.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (UsageError, LimitError) as err:
        commands.print_error(f"error: {err}")
        return EXIT_USAGE
    except OSError as err:
        commands.print_error(f"error: {describe(err)}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        commands.print_error("interrupted")
        return EXIT_INTERRUPTED
    except Exception as err:  # noqa: BLE001 -- a user of the CLI never sees a traceback
        commands.print_error(f"internal error: {type(err).__name__}: {err} (the full report is "
                             f"in {write_report(err)}; please include it in a bug report)")
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
