"""Progress reporting: what fit tells a reporter, and the reporters the command line uses.

fit calls start_epoch, then step after every step, then end_epoch with the History, and
close when it returns or raises. `make_progress` picks a tqdm bar for a terminal and one
line per epoch for logs and pipes.
"""
from __future__ import annotations

import math
import sys


class Progress:
    """What fit tells a progress reporter; this base class reports nothing."""

    def start_epoch(self, epoch, epochs, n_steps, done_steps):
        pass

    def step(self, running_loss):
        pass

    def end_epoch(self, history):
        pass

    def close(self):
        pass


class BarProgress(Progress):
    """A tqdm bar per epoch, its postfix the epoch's running mean loss."""

    def __init__(self, file=None):
        self.file = file if file is not None else sys.stderr
        self.bar = None

    def start_epoch(self, epoch, epochs, n_steps, done_steps):
        from tqdm import tqdm

        self.bar = tqdm(total=n_steps, initial=done_steps, desc=f"epoch {epoch}/{epochs}",
                        file=self.file, leave=True, unit="step", dynamic_ncols=True)

    def step(self, running_loss):
        self.bar.set_postfix_str(f"loss {running_loss:.3f}", refresh=False)
        self.bar.update(1)

    def end_epoch(self, history):
        text = f"train {history.train_loss[-1]:.3f}"
        if math.isfinite(history.val_loss[-1]):
            text += f", val {history.val_loss[-1]:.3f}"
        self.bar.set_postfix_str(text, refresh=False)
        self.close()

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class LineProgress(Progress):
    """One line per finished epoch (for logs and pipes, where a bar would be noise)."""

    def __init__(self, file=None, epochs=None):
        self.file = file if file is not None else sys.stdout
        self.epochs = epochs

    def start_epoch(self, epoch, epochs, n_steps, done_steps):
        self.epochs = epochs

    def end_epoch(self, history):
        print(f"epoch {history.epoch[-1]}/{self.epochs}  {_epoch_summary(history)}  "
              f"({history.seconds[-1]:.2f} s)", file=self.file, flush=True)


def _epoch_summary(history):
    text = f"train {history.train_loss[-1]:.3f}"
    if math.isfinite(history.val_loss[-1]):
        text += f"  val {history.val_loss[-1]:.3f} (rec {history.val_rec[-1]:.3f}, " \
                f"kl {history.val_kl[-1]:.3f})"
    return text


def make_progress(mode="auto", stream=None):
    """A Progress for mode "bar", "lines", "none" or "auto" (a bar on a terminal, else lines)."""
    stream = sys.stdout if stream is None else stream
    if mode == "auto":
        mode = "bar" if getattr(stream, "isatty", lambda: False)() else "lines"
    if mode == "bar":
        return BarProgress(stream)
    if mode == "lines":
        return LineProgress(stream)
    if mode == "none":
        return Progress()
    raise ValueError(f"progress mode must be auto, bar, lines or none, got {mode!r}")
