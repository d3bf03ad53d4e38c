"""Benchmarks of npvae against the GEMM floor and PyTorch (not part of the test suite)."""
