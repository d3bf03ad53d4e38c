"""The training settings and their constraints, each declared once.

`SETTINGS` maps every setting of a training run -- the keys of a run's config.json (the
TrainConfig of npvae.app.config), most of them also keyword arguments of `fit` -- to the
constraint its value must meet. `check_setting(name, value, source)` is the one check of a
value: it returns the value normalised (an int, a float, a list of hidden sizes) or raises
a SettingError, one line naming where the value came from, the setting, the constraint and
the value:

    fit: batch_size must be an integer >= 1, got 0
    runs/r/config.json: clip_norm must be None or a finite number > 0, got -1.0

`fit` passes source "fit", TrainConfig the file or "settings", and the command line checks
each flag's text the same way (argparse then names the flag: "argument --batch-size: ...").

Types are strict: an integer setting takes a Python or NumPy integer, not a bool and not a
float -- not even 10.0, as TrainConfig has always refused it in a config file; a number
setting takes an int or a float, not a bool, and never NaN or inf. Text from the command
line is read as a number first ("3" -> 3, "2.9" -> 2.9, "nan" -> nan), so a bad flag gets
the same message as the same bad value passed to fit.

`check_combination` holds the rules between settings (the IWAE objective has no KL term to
weigh, so it takes beta 1, no free bits and no warm-up; alpha and gamma weigh terms of the
tcvae objective only).
"""
from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np

from .layers import ACTIVATIONS
from .likelihoods import LIKELIHOODS
from .objectives import OBJECTIVES

BINARIZE = ("none", "static", "threshold", "dynamic")
BACKENDS = ("numpy", "numba")


class SettingError(ValueError):
    """A bad setting, or settings that clash. `detail` is the message without the source
    ("batch_size must be an integer >= 1, got 0"); str() puts the source in front."""

    def __init__(self, detail, source=None, name=None):
        self.detail, self.source, self.name = detail, source, name
        super().__init__(f"{source}: {detail}" if source else detail)


def _show(value):
    """repr of a value, NumPy scalars shown as the Python number they hold."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _is_bool(value):
    return isinstance(value, (bool, np.bool_))


def _read_number(text):
    """Command-line text as the number it spells (int before float), else the text itself."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


# ------------------------------------------------------------------ the kinds of constraint


class Constraint:
    """A rule for one value: `text` says it in words, `convert` returns the value normalised
    or raises ValueError, `parse` reads command-line text into a value to convert."""

    text = "valid"

    def convert(self, value):
        raise NotImplementedError

    def parse(self, text):
        return text


def _bounds_text(low, high, low_open, high_open):
    if high is None:
        return f"{'>' if low_open else '>='} {low:g}"
    return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


class Integer(Constraint):
    """An integral number (not a bool, not a float) in [low, high] (high None: no bound)."""

    def __init__(self, low, high=None):
        self.low, self.high = low, high
        self.text = f"an integer {_bounds_text(low, high, False, False)}"

    def convert(self, value):
        if _is_bool(value) or not isinstance(value, Integral):
            raise ValueError
        if value < self.low or (self.high is not None and value > self.high):
            raise ValueError
        return int(value)

    parse = staticmethod(_read_number)


class Number(Constraint):
    """A finite real number (int or float, not a bool) between low and high; each end is
    included unless marked open."""

    def __init__(self, low, high=None, *, low_open=False, high_open=False):
        self.low, self.high, self.low_open, self.high_open = low, high, low_open, high_open
        self.text = f"a finite number {_bounds_text(low, high, low_open, high_open)}"

    def convert(self, value):
        if _is_bool(value) or not isinstance(value, Real) or not math.isfinite(value):
            raise ValueError
        above = value > self.low if self.low_open else value >= self.low
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        if not (above and below):
            raise ValueError
        return float(value)

    parse = staticmethod(_read_number)


class OneOf(Constraint):
    """One of a few names."""

    def __init__(self, *options):
        self.options = options
        self.text = "one of " + ", ".join(repr(o) for o in options)

    def convert(self, value):
        if not isinstance(value, str) or value not in self.options:
            raise ValueError
        return value


class Boolean(Constraint):
    text = "true or false"

    def convert(self, value):
        if not _is_bool(value):
            raise ValueError
        return bool(value)


class Text(Constraint):
    """A non-empty string (a name or a path)."""

    text = "a non-empty string"

    def convert(self, value):
        if not isinstance(value, str) or not value:
            raise ValueError
        return value


class Sizes(Constraint):
    """Layer sizes, each an integer >= 1: a list, one integer, or text such as "256,128"
    ("" or [] for none); normalised to a list of ints."""

    text = "integers >= 1: a list, or text such as 256,128 (empty for none)"

    def convert(self, value):
        if isinstance(value, str):
            parts = [p for p in value.replace(" ", "").split(",") if p]
            if not all(p.isdigit() for p in parts):
                raise ValueError
            value = [int(p) for p in parts]
        elif isinstance(value, Integral) and not _is_bool(value):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ValueError
        return [Integer(1).convert(h) for h in value]


class Optional(Constraint):
    """None (null in JSON), or a value meeting `inner`."""

    def __init__(self, inner):
        self.inner = inner
        self.text = f"None or {inner.text}"

    def convert(self, value):
        return None if value is None else self.inner.convert(value)

    def parse(self, text):
        return self.inner.parse(text)


# ------------------------------------------------------------------ the table


SETTINGS = {
    # the data
    "dataset": Text(),  # digits, mnist, fashion-mnist, sprites, or a .npy/.npz/.csv file
    "data_dir": Optional(Text()),  # a folder holding MNIST-style IDX files
    "binarize": OneOf(*BINARIZE),
    "test_fraction": Number(0, 1, high_open=True),
    # the model
    "hidden": Sizes(),
    "activation": OneOf(*ACTIVATIONS),
    "likelihood": OneOf(*LIKELIHOODS),
    "latent_dim": Integer(1),
    "conditional": Boolean(),
    # the objective
    "objective": OneOf(*OBJECTIVES),
    "beta": Number(0),  # the KL's weight; the total correlation's under tcvae
    "alpha": Number(0),  # tcvae: the index-code mutual information's weight
    "gamma": Number(0),  # tcvae: the dimension-wise KL's weight
    "free_bits": Number(0),
    "warmup_epochs": Integer(0),
    "n_samples": Integer(1),
    # the optimisation
    "epochs": Integer(1),
    "batch_size": Integer(1),
    "lr": Number(0, low_open=True),
    "clip_norm": Optional(Number(0, low_open=True)),  # None: no clipping
    "seed": Integer(0),
    "backend": Optional(OneOf(*BACKENDS)),  # None: the library's current backend
}

# fit's own `binarize` is a switch (draw a fresh binary batch every step, or not); a run's
# `binarize` is the mode, of which "dynamic" turns fit's switch on.
FIT_SETTINGS = {
    **{name: SETTINGS[name] for name in (
        "epochs", "batch_size", "beta", "seed", "n_samples", "clip_norm", "objective",
        "free_bits", "warmup_epochs", "alpha", "gamma")},
    "binarize": Boolean(),
}


def check_value(constraint, name, value, source=None):
    """`value` normalised by `constraint`, or a SettingError naming `name` and `source`."""
    try:
        return constraint.convert(value)
    except (ValueError, TypeError):
        raise SettingError(f"{name} must be {constraint.text}, got {_show(value)}", source,
                           name) from None


def check_setting(name, value, source=None, table=SETTINGS):
    """The value of setting `name` normalised, or a SettingError (see the module docstring)."""
    return check_value(table[name], name, value, source)


def check_settings(values, source=None, table=SETTINGS):
    """A dict of settings, each checked and normalised; the first bad one raises."""
    return {name: check_setting(name, value, source, table) for name, value in values.items()}


def check_combination(settings, source=None):
    """SettingError when checked settings clash. `settings` is a dict of checked values;
    absent ones take their defaults (objective "elbo", beta, alpha, gamma 1, no free bits,
    no warm-up). The IWAE bound has no KL term, so beta, free bits and KL warm-up have
    nothing to weigh; alpha and gamma weigh terms of the tcvae objective, which has no
    single KL to floor or ramp up."""
    get = {"objective": "elbo", "beta": 1.0, "alpha": 1.0, "gamma": 1.0, "free_bits": 0.0,
           "warmup_epochs": 0, **settings}.get
    objective = get("objective")
    for name in ("alpha", "gamma"):
        if objective != "tcvae" and get(name) != 1:
            raise SettingError(f"{name} weighs a term of the tcvae objective; with objective "
                               f"{objective!r} it must be 1, got {name} {get(name):g}", source, name)
    if objective == "tcvae":
        if get("free_bits") != 0:
            raise SettingError(f"free bits floor the ELBO's KL per dimension; the tcvae objective "
                               f"weighs its parts with alpha, beta and gamma instead, got free_bits "
                               f"{get('free_bits'):g}", source, "free_bits")
        if get("warmup_epochs"):
            raise SettingError(f"KL warm-up ramps the ELBO's KL weight; the tcvae objective has "
                               f"three (alpha, beta, gamma), got warmup_epochs "
                               f"{get('warmup_epochs')}", source, "warmup_epochs")
    if objective != "iwae":
        return
    if get("beta") != 1:
        raise SettingError(f"the IWAE objective is defined for beta = 1 only, got beta {get('beta'):g}",
                           source, "beta")
    if get("free_bits") != 0:
        raise SettingError(f"the IWAE objective has no KL term to floor with free bits, got "
                           f"free_bits {get('free_bits'):g}", source, "free_bits")
    if get("warmup_epochs"):
        raise SettingError(f"KL warm-up weighs the ELBO's KL term; the IWAE objective has none, "
                           f"got warmup_epochs {get('warmup_epochs')}", source, "warmup_epochs")
