"""The models: a VAE, a conditional VAE and a VAE with two stochastic layers, on one base."""
from .conditional import ConditionalVAE, one_hot
from .hierarchical import HierarchicalVAE
from .vae import VAE, ELBOTerms

__all__ = ["VAE", "ConditionalVAE", "HierarchicalVAE", "ELBOTerms", "one_hot"]
