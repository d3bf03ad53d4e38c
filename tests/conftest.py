"""Shared fixtures: the real MNIST test set ($NPVAE_SHARED_DATA/mnist), and small float64 models.

npvae itself never looks for that folder: tests hand it to the loaders as data_dir (or through
$NPVAE_DATA), as a user would.
"""
import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir():
    """The folder holding mnist/: $NPVAE_SHARED_DATA, else ../shared/data beside the repo."""
    return Path(os.environ.get("NPVAE_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def mnist_dir():
    """Folder of the real MNIST t10k files, to pass as data_dir; skips when absent, fails when CI requires data."""
    path = shared_data_dir() / "mnist"
    if not (path / "t10k-images-idx3-ubyte.gz").exists():
        if os.environ.get("NPVAE_REQUIRE_DATA") == "1":
            pytest.fail(f"NPVAE_REQUIRE_DATA=1 but the MNIST test set is not in {path}")
        pytest.skip(f"real MNIST test set not found in {path} (set NPVAE_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def mnist_split(mnist_dir):
    """(x_train, x_test): the first 8,000 and last 2,000 MNIST test images, float32 in [0, 1]."""
    from npvae.data import mnist_split as split

    x_train, x_test, _, _ = split(mnist_dir)
    return x_train, x_test


def away_from_kinks(a, margin=1e-3):
    """Push values within `margin` of 0 out to +-margin, so finite differences of ReLU-like
    functions (h = 1e-5) never straddle the kink."""
    a = np.array(a, dtype=np.float64)
    near = np.abs(a) < margin
    a[near] = np.where(a[near] >= 0, margin, -margin)
    return a


@pytest.fixture
def stop_at(monkeypatch):
    """stop_at(n): from now on npvae's training is asked to stop (as by Ctrl-C) the n-th
    time fit checks its stop flag, in place of a real SIGINT."""
    import contextlib
    import signal

    import npvae.train
    from npvae.train import StopFlag

    def arm(n_calls):
        class CountingFlag(StopFlag):
            calls = 0

            def __call__(self):
                self.calls += 1
                if self.calls >= n_calls:
                    self.signal = signal.SIGINT
                return self.is_set

        monkeypatch.setattr(npvae.train, "catch_stop_signals",
                            lambda: contextlib.nullcontext(CountingFlag()))
    return arm


@pytest.fixture(autouse=True)
def _restore_the_backend():
    """Each test starts on the backend the suite started on: a test (or an in-process
    command) that selects one does not leak it into the tests after it."""
    import npvae

    before = npvae.get_backend()
    yield
    npvae.set_backend(before)
