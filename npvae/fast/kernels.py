"""Every numba kernel of npvae in one namespace, as the blocks call them (`K.bias_act_forward`).

The kernels live beside the blocks they serve: dense.py (bias + activation), likelihoods.py,
latent.py (the Gaussian latent layer and the objectives' sample weights), tcvae.py (the
tcvae objective's minibatch terms) and optim.py. Each has a NumPy twin in the module where its
math is written down (layers.py, likelihoods.py, latent.py, objectives.py, tcvae.py, optim.py):
the twin is the specification and the test oracle (tests/test_kernels.py). ``NUMBA_DISABLE_JIT=1`` runs the kernels as plain Python.

Conventions: kernels write into arrays they are given and allocate nothing, so a training
step at a fixed batch shape allocates no arrays; scalars arrive cast to the arrays' dtype,
so float32 stays float32 inside the loops; matrix products are not here (the blocks call
BLAS through ``np.matmul(a, b, out=...)``).
"""
from .dense import add_scaled, bias_act_backward, bias_act_forward, scale_rows  # noqa: F401
from .jit import PARALLEL_OPTIMIZER  # noqa: F401
from .latent import (kl_per_dim, latent_backward, log_prior_ratio, log_q, reparameterize,  # noqa: F401
                     softmax_samples)
from .likelihoods import bernoulli, continuous_bernoulli, gaussian, gaussian_learned  # noqa: F401
from .tcvae import tc_terms, work_shape as tc_work_shape  # noqa: F401
from .optim import adam_update, adam_update_serial, sgd_update, sgd_update_serial  # noqa: F401
