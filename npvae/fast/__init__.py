"""The fast path: the backend switch and the numba kernels beneath the building blocks."""
