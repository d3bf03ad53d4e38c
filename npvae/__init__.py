"""npvae: a variational autoencoder in NumPy with hand-derived, finite-difference-checked gradients."""
from .fast.backend import get_backend, set_backend
from .models.conditional import ConditionalVAE
from .data import load_dataset
from .likelihoods import (Bernoulli, ContinuousBernoulli, Gaussian, GaussianLearned,
                            Likelihood, make_likelihood)
from .disentanglement import (FactorVAEScore, MIG, disentanglement_metrics, factor_vae_score,
                              mutual_information_gap)
from .evaluate import active_units, kl_per_dimension, log_likelihood, mutual_information, negative_elbo
from .gradcheck import GradCheckReport, check_gradients, check_model_gradients
from .models.hierarchical import HierarchicalVAE
from .io import load, save
from .models.vae import VAE, ELBOTerms
from .optim import SGD, Adam, clip_grad_norm, exponential_decay, global_norm, warmup_cosine
from .train import FitState, History, TrainingDiverged, TrainingInterrupted, fit
from .app.sweep import sweep

__version__ = "0.1.0"

__all__ = [
    "VAE", "ConditionalVAE", "HierarchicalVAE", "ELBOTerms", "VAEEstimator",
    "fit", "History", "FitState", "TrainingDiverged", "TrainingInterrupted",
    "Adam", "SGD", "clip_grad_norm", "global_norm", "warmup_cosine", "exponential_decay",
    "log_likelihood", "negative_elbo", "active_units", "kl_per_dimension", "mutual_information",
    "mutual_information_gap", "factor_vae_score", "disentanglement_metrics", "MIG", "FactorVAEScore",
    "save", "load", "load_dataset",
    "check_gradients", "check_model_gradients", "GradCheckReport",
    "Likelihood", "Bernoulli", "Gaussian", "GaussianLearned", "ContinuousBernoulli",
    "make_likelihood", "get_backend", "set_backend",
    "sweep",
]


def __getattr__(name):
    # The scikit-learn estimator is imported on first use, so `import npvae` (and every
    # command line start) does not pay for importing scikit-learn.
    if name == "VAEEstimator":
        from .estimator import VAEEstimator

        return VAEEstimator
    raise AttributeError(f"module 'npvae' has no attribute {name!r}")
