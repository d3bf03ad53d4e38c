"""VAEEstimator: npvae's VAE as a scikit-learn transformer.

The estimator holds settings and nothing else until `fit`; `fit` checks them against the
one constraint table of npvae.settings (a bad value raises its SettingError, a ValueError
as scikit-learn expects), builds a `VAE` and trains it with `npvae.fit`. After that the
estimator is a thin view of the trained model: `transform` is the encoder's posterior
mean, `inverse_transform` the decoder's mean, `score_samples` the per-example ELBO.

The estimator is deterministic given `random_state`: the weights, the shuffling, the
training noise and the noise of `score_samples` all follow from one int seed.
"""
from __future__ import annotations

import hashlib
from numbers import Integral

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from .likelihoods import LIKELIHOODS
from .models.base import check_dtype
from .models.vae import VAE
from .optim import Adam
from .progress import make_progress
from .settings import check_combination, check_setting, check_settings
from .train import fit

__all__ = ["VAEEstimator"]

SOURCE = "VAEEstimator"  # where a SettingError says the bad value came from
EVAL_BATCH = 1000  # rows per forward pass in transform, inverse_transform and score_samples
SEED_BOUND = np.iinfo(np.int32).max  # seeds drawn from a RandomState lie in [0, SEED_BOUND)

# The estimator's parameters that are rows of npvae.settings.SETTINGS (random_state is
# checked as the int `seed` it becomes).
TABLE_SETTINGS = ("latent_dim", "hidden", "activation", "likelihood", "beta", "epochs",
                  "batch_size", "lr", "n_samples", "objective", "free_bits",
                  "warmup_epochs", "alpha", "gamma", "clip_norm")


class VAEEstimator(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """A variational autoencoder as a scikit-learn transformer.

    `fit` trains an npvae `VAE` (MLP encoder and decoder, diagonal-Gaussian posterior)
    with Adam on the negative ELBO. `transform` maps examples to their posterior means,
    `inverse_transform` maps latent points to the decoder's means, `score_samples` gives
    each example's ELBO, and `score` their mean, so a `GridSearchCV` picks the setting of
    highest held-out ELBO. The constructor stores its arguments untouched; `fit` checks
    them through npvae.settings, the table `npvae train` and `npvae.fit` use, so a bad
    value gets the same message (led by "VAEEstimator:").

    Parameters
    ----------
    latent_dim : int, default=2
        J, the size of z and the number of output features of `transform`. 2, as for
        `npvae train`: the one size whose latent space can be drawn as it is.
    hidden : tuple of int, default=(256, 128)
        The encoder's hidden layer sizes; the decoder mirrors them. () makes both linear.
    activation : str, default="relu"
        "relu", "leaky_relu", "tanh", "sigmoid", "softplus", "elu" or "identity".
    likelihood : str, default="gaussian"
        The observation model p(x|z): "gaussian" (unit variance; any real data),
        "gaussian-learned" (a variance per feature; any real data), "bernoulli" or
        "continuous-bernoulli" (data in [0, 1] only, e.g. after a MinMaxScaler; `fit` and
        `score_samples` refuse other values). The default is "gaussian", not the
        "bernoulli" of `npvae train`, because a scikit-learn transformer must accept any
        real-valued features.
    beta : float, default=1.0
        The weight of the KL term in the training objective (beta-VAE), or of the total
        correlation under objective "tcvae". The scores stay the plain ELBO.
    epochs : int, default=100
        Passes over the training data.
    batch_size : int, default=64
        Examples per step (the whole data when it has fewer rows).
    lr : float, default=3e-3
        Adam's learning rate.
    n_samples : int, default=1
        L, the noise samples of z per example, in training and in `score_samples`.
    objective : {"elbo", "iwae", "tcvae"}, default="elbo"
        The training objective; "iwae" takes beta 1, no free bits and no warm-up; "tcvae"
        (beta-TCVAE) splits the KL into mutual information, total correlation and
        dimension-wise KL, weighed `alpha`, `beta` and `gamma` (no free bits, no warm-up).
    free_bits : float, default=0.0
        Floor each latent dimension's batch-average KL at this many nats (0: off).
    warmup_epochs : int, default=0
        Epochs over which the KL weight rises linearly to `beta` (0: off).
    alpha : float, default=1.0
        The "tcvae" objective's weight of the index-code mutual information.
    gamma : float, default=1.0
        The "tcvae" objective's weight of the dimension-wise KL.
    clip_norm : float or None, default=None
        Clip the global gradient norm to this value before each step (None: no clipping).
    dtype : {"float32", "float64"}, default="float64"
        The model's precision, and the dtype of every array the estimator returns.
        float64 is scikit-learn's usual precision; "float32", what `npvae train` uses,
        trains about 1.4 times faster.
    random_state : int, RandomState instance or None, default=None
        An int is the seed of the model's initial weights, the shuffling, the training
        noise and the noise of `score_samples` (the same int gives the same model, and
        the model `npvae.fit` trains from ``VAE(..., seed=random_state)`` with
        ``seed=random_state``). A RandomState, or None (NumPy's global one), gives a
        seed drawn from it at every `fit`.
    verbose : int, default=0
        0 prints nothing; more prints one line per epoch.

    Attributes
    ----------
    model_ : VAE
        The trained model.
    history_ : History
        The per-epoch training metrics (nats per example).
    n_iter_ : int
        The number of epochs run.
    seed_ : int
        The seed `random_state` gave (see `random_state`).
    n_features_in_ : int
        n_features, the number of features seen in `fit` (D); every method but
        `inverse_transform` takes examples of this many features.
    feature_names_in_ : ndarray of str, shape (n_features,)
        The feature names seen in `fit`; only when X had string column names.

    See Also
    --------
    npvae.VAE : The model itself.
    npvae.fit : The training loop `fit` calls.

    Notes
    -----
    The noise of `score_samples` is drawn for each example on its own, from a Generator
    seeded by `seed_` and a hash of the example's values (in the model's dtype). So an
    example's score does not depend on the other rows scored with it, nor on their
    order, the same call gives the same numbers, and distinct examples get independent
    noise, which keeps the mean in `score` an honest Monte Carlo average.

    The estimator's tags: `transformer_tags.preserves_dtype` is ``[dtype]`` (float
    input leaves `transform` in the model's dtype, so only that one is preserved), and
    `input_tags.positive_only` is True for the likelihoods on [0, 1] (necessary, not
    sufficient: values above 1 are refused as well). Every other tag is scikit-learn's
    default: the estimator is deterministic given `random_state`, takes dense, finite,
    2-D input, and needs no y.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.preprocessing import MinMaxScaler
    >>> from npvae import VAEEstimator
    >>> X = MinMaxScaler().fit_transform(load_digits().data)
    >>> vae = VAEEstimator(likelihood="bernoulli", epochs=5, random_state=0).fit(X)
    >>> vae.transform(X[:3]).shape
    (3, 2)
    """

    def __init__(self, latent_dim=2, *, hidden=(256, 128), activation="relu",
                 likelihood="gaussian", beta=1.0, epochs=100, batch_size=64, lr=3e-3,
                 n_samples=1, objective="elbo", free_bits=0.0, warmup_epochs=0, alpha=1.0,
                 gamma=1.0, clip_norm=None, dtype="float64", random_state=None, verbose=0):
        self.latent_dim = latent_dim
        self.hidden = hidden
        self.activation = activation
        self.likelihood = likelihood
        self.beta = beta
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.n_samples = n_samples
        self.objective = objective
        self.free_bits = free_bits
        self.warmup_epochs = warmup_epochs
        self.alpha = alpha
        self.gamma = gamma
        self.clip_norm = clip_norm
        self.dtype = dtype
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ fitting

    def fit(self, X, y=None):
        """Train a VAE on X.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
            Training examples: any finite real values, or values in [0, 1] for the
            Bernoulli likelihoods.
        y : None
            Ignored; present for the scikit-learn API.

        Returns
        -------
        self : VAEEstimator
            The fitted estimator.

        Raises
        ------
        ValueError
            A SettingError naming a bad parameter, its constraint and the value; or X
            empty, not 2-D, holding NaN or inf, or outside the likelihood's support.
        TrainingDiverged
            When the loss becomes NaN or inf (try a lower `lr`, or `clip_norm`).
        """
        settings = self._checked_settings()
        X = validate_data(self, X, dtype=settings["dtype"])
        model = VAE(X.shape[1], settings["latent_dim"], hidden=tuple(settings["hidden"]),
                    activation=settings["activation"], likelihood=settings["likelihood"],
                    dtype=settings["dtype"], seed=settings["seed"])
        history = fit(model, X, epochs=settings["epochs"], batch_size=settings["batch_size"],
                      optimizer=Adam(lr=settings["lr"]), beta=settings["beta"],
                      seed=settings["seed"], n_samples=settings["n_samples"],
                      clip_norm=settings["clip_norm"], objective=settings["objective"],
                      free_bits=settings["free_bits"], warmup_epochs=settings["warmup_epochs"],
                      alpha=settings["alpha"], gamma=settings["gamma"],
                      progress=make_progress("lines") if self.verbose else None)
        self.model_, self.history_, self.n_iter_ = model, history, len(history)
        self.seed_ = settings["seed"]
        self._n_score_samples = settings["n_samples"]  # L of score_samples, fixed at fit
        return self

    def _checked_settings(self):
        """The parameters checked and normalised through npvae.settings, plus the int
        `seed` drawn from random_state and the model's numpy dtype; SettingError (a
        ValueError) names the first bad one."""
        values = {name: getattr(self, name) for name in TABLE_SETTINGS}
        values["seed"] = seed_from(self.random_state)
        settings = check_settings(values, SOURCE)
        check_combination(settings, SOURCE)
        settings["dtype"] = check_dtype(self.dtype)
        return settings

    # ------------------------------------------------------------------ the transformer

    @property
    def _n_features_out(self):
        """The number of output features of `transform` (what get_feature_names_out names)."""
        return self.model_.latent_dim

    def transform(self, X):
        """The posterior means of X.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
            Examples (any finite values: the encoder does not check the support).

        Returns
        -------
        Z : ndarray, shape (n_samples, latent_dim)
            E[z | x] for each example, in the model's dtype.
        """
        X = self._checked_input(X)
        return in_batches(lambda xb: self.model_.encode(xb)[0], X)

    def inverse_transform(self, X):
        """The decoder's means at latent points.

        Parameters
        ----------
        X : array-like, shape (n_points, latent_dim)
            Latent points z, such as the output of `transform`.

        Returns
        -------
        X_original : ndarray, shape (n_points, n_features)
            E[x | z] for each point (pixel probabilities for the Bernoulli), in the
            model's dtype.
        """
        check_is_fitted(self, "model_")
        Z = check_array(X, dtype=self.model_.dtype)
        return in_batches(self.model_.decode, Z)

    # ------------------------------------------------------------------ scores

    def score_samples(self, X):
        """The ELBO of each example, a lower bound on log p(x): higher is better.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
            Examples in the likelihood's support.

        Returns
        -------
        elbo : ndarray, shape (n_samples,)
            E_q[log p(x|z)] - KL(q(z|x) || N(0, I)) in nats, in the model's dtype,
            estimated with `n_samples` noise draws per example (see Notes for how they
            are drawn).
        """
        X = self._checked_input(X)
        eps = self._score_noise(X)  # (L, n, J)
        scores = np.empty(X.shape[0], dtype=self.model_.dtype)
        for start in range(0, X.shape[0], EVAL_BATCH):
            stop = start + EVAL_BATCH
            scores[start:stop] = self.model_.elbo(X[start:stop], eps=eps[:, start:stop]).elbo
        return scores

    def score(self, X, y=None):
        """The mean ELBO of X, in nats per example (higher is better).

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
            Examples in the likelihood's support.
        y : None
            Ignored; present for the scikit-learn API.

        Returns
        -------
        float
            The mean of `score_samples(X)`.
        """
        return float(np.mean(self.score_samples(X), dtype=np.float64))

    def _score_noise(self, X):
        """Standard-normal noise of shape (L, n, latent_dim) for checked X, each example's
        column drawn from a Generator seeded by (`seed_`, a hash of the example)."""
        L, J = self._n_score_samples, self.model_.latent_dim
        eps = np.empty((L, X.shape[0], J), dtype=self.model_.dtype)
        for i, row in enumerate(X):
            rng = np.random.default_rng([self.seed_, row_key(row)])
            eps[:, i] = rng.standard_normal((L, J), dtype=self.model_.dtype)
        return eps

    # ------------------------------------------------------------------ sampling

    def sample(self, n_samples=1, random_state=None):
        """Decode draws from the prior: new examples from the model.

        Unlike GaussianMixture.sample, which returns (X, y), there are no labels to
        return: only X.

        Parameters
        ----------
        n_samples : int, default=1
            The number of examples to draw.
        random_state : int, RandomState instance or None, default=None
            Draws z ~ N(0, I); None uses NumPy's global RandomState, an int gives the
            same examples every call.

        Returns
        -------
        X : ndarray, shape (n_samples, n_features)
            The decoder's means E[x|z] of the draws, in the model's dtype.
        """
        check_is_fitted(self, "model_")
        n = check_setting("n_samples", n_samples, f"{SOURCE}.sample")
        return self.model_.sample(n, rng=np.random.default_rng(seed_from(random_state)))

    # ------------------------------------------------------------------ helpers

    def _checked_input(self, X):
        """X validated against what fit saw (features, names), in the model's dtype."""
        check_is_fitted(self, "model_")
        return validate_data(self, X, reset=False, dtype=self.model_.dtype)

    def __sklearn_tags__(self):
        """scikit-learn's default tags, but preserves_dtype and positive_only (see Notes)."""
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = dtype_names(self.dtype)
        tags.input_tags.positive_only = on_unit_interval(self.likelihood)
        return tags


# ------------------------------------------------------------------ module helpers


def seed_from(random_state):
    """An int seed for npvae: `random_state` itself when it is an int (a negative or too
    large one is refused as check_random_state refuses it), else drawn from it (None:
    NumPy's global RandomState)."""
    rng = check_random_state(random_state)
    if isinstance(random_state, Integral) and not isinstance(random_state, (bool, np.bool_)):
        return int(random_state)
    return int(rng.randint(SEED_BOUND))


def row_key(row):
    """A 64-bit int hash of one example's values (its bytes, in C order)."""
    digest = hashlib.blake2b(np.ascontiguousarray(row).tobytes(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def in_batches(f, X, size=EVAL_BATCH):
    """f applied to consecutive blocks of `size` rows of X, the results stacked by row."""
    return np.concatenate([f(X[start:start + size]) for start in range(0, X.shape[0], size)])


def dtype_names(dtype):
    """[the name of `dtype`] for the preserves_dtype tag; [] for a dtype fit would refuse."""
    try:
        return [check_dtype(dtype).name]
    except (TypeError, ValueError):
        return []


def on_unit_interval(likelihood):
    """True when the likelihood named `likelihood` is defined on [0, 1] only."""
    kind = LIKELIHOODS.get(likelihood) if isinstance(likelihood, str) else None
    return kind is not None and kind.support[0] >= 0
