"""The settings of a training run: TrainConfig, read from config files and checked.

Every value is checked through the table in npvae.settings, so a bad one gets the message
fit and the command line give for it, led by where it came from (a file, or "settings"
for defaults merged with flags). A UsageError is a problem the user can fix.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from ..files import open_regular
from ..models.conditional import ConditionalVAE
from ..models.vae import VAE
from ..optim import Adam
from ..settings import SettingError, check_combination, check_settings


# The settings a run may change when it is resumed from its checkpoint; every other one
# describes the run itself (its data, model, objective, seed, batches).
RESUMABLE = frozenset({"epochs", "lr", "clip_norm", "backend"})


class UsageError(ValueError):
    """A problem the user can fix (a bad setting, a missing run folder); one-line message."""


@dataclass
class TrainConfig:
    """Every setting of `npvae train`; the defaults train on digits in seconds.

    latent_dim 2 is the default because it is the one size whose latent space can be drawn
    as it is (the manifold and the scatter figures); larger sizes reconstruct better.
    lr 3e-3 with 100 epochs of batch 64 was the best of a few settings tried on digits; on
    larger data sets 1e-3 is the safer start.
    """

    dataset: str = "digits"
    data_dir: str | None = None
    binarize: str = "none"
    test_fraction: float = 0.2
    hidden: list = field(default_factory=lambda: [256, 128])
    activation: str = "relu"
    likelihood: str = "bernoulli"
    latent_dim: int = 2
    beta: float = 1.0
    alpha: float = 1.0
    gamma: float = 1.0
    epochs: int = 100
    batch_size: int = 64
    lr: float = 3e-3
    clip_norm: float | None = None
    n_samples: int = 1
    objective: str = "elbo"
    free_bits: float = 0.0
    warmup_epochs: int = 0
    seed: int = 0
    backend: str | None = None
    conditional: bool = False

    @classmethod
    def keys(cls):
        return [f.name for f in fields(cls)]

    @classmethod
    def check_keys(cls, d, source="config"):
        """UsageError unless `d` is a dict whose keys are all settings (some may be absent)."""
        if not isinstance(d, dict):
            raise UsageError(f"{source}: expected a JSON object of settings, got {type(d).__name__}")
        unknown = sorted(set(d) - set(cls.keys()))
        if unknown:
            raise UsageError(f"{source}: unknown setting {unknown[0]!r} "
                             f"(known: {', '.join(cls.keys())})")

    @classmethod
    def from_dict(cls, d, source="config"):
        """A checked TrainConfig from a dict; unknown keys and bad values raise UsageError."""
        cls.check_keys(d, source)
        cfg = cls(**d)
        cfg.check(source)
        return cfg

    def to_dict(self):
        return asdict(self)

    def check(self, source="config"):
        """Normalise and validate every value in place (each through npvae.settings, then
        the rules between them); raise UsageError on a bad one."""
        try:
            values = check_settings(self.to_dict(), source)
            check_combination(values, source)
        except SettingError as err:
            raise UsageError(str(err)) from None
        for key, value in values.items():
            setattr(self, key, value)
        return self

    def build_model(self, input_dim, dtype=np.float32, n_classes=None):
        """The untrained model these settings describe (weights drawn from `seed`): a VAE,
        or with `conditional` a ConditionalVAE over `n_classes` labels."""
        arch = dict(latent_dim=self.latent_dim, hidden=tuple(self.hidden),
                    activation=self.activation, likelihood=self.likelihood, dtype=dtype,
                    seed=self.seed)
        if self.conditional:
            if n_classes is None:
                raise ValueError("a conditional model needs n_classes")
            return ConditionalVAE(input_dim, n_classes, **arch)
        return VAE(input_dim, **arch)

    def build_optimizer(self):
        return Adam(lr=self.lr)

    def changed_beyond_resume(self, other):
        """The settings in which `other` differs from these, other than those a resume may
        change (RESUMABLE), sorted: empty when `other` continues the same run."""
        mine, theirs = self.to_dict(), other.to_dict()
        return sorted(k for k in mine if k not in RESUMABLE and mine[k] != theirs[k])


CONFIG_FILE_BYTES = 1 << 20  # a settings file is a few hundred bytes


def read_config_file(path):
    """The dict in a JSON settings file; UsageError for a missing, malformed, oversized or
    non-regular file (a FIFO is refused, not waited on)."""
    try:
        with open_regular(path) as f:
            raw = f.read(CONFIG_FILE_BYTES + 1)
    except OSError as err:
        raise UsageError(f"cannot read config file {path}: {err.strerror}" if err.strerror
                         else f"cannot read config file {err}") from None
    if len(raw) > CONFIG_FILE_BYTES:
        raise UsageError(f"{path}: larger than {CONFIG_FILE_BYTES:,} bytes, not a settings file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise UsageError(f"{path}: not UTF-8 text (byte {err.start} is {raw[err.start]:#04x}), "
                         f"not a JSON settings file") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise UsageError(f"{path}: not valid JSON ({err})") from None
