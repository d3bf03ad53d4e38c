"""The training loop: buffers reproduce the plain loop bit for bit, stop/resume is exact,
divergence names its step, progress reporters and the Ctrl-C flag behave."""
import io
import math
import os
import signal

import numpy as np
import pytest

import npvae
from npvae.progress import BarProgress, LineProgress, Progress, make_progress
from npvae.train import (FitState, History, TrainingDiverged, TrainingInterrupted, catch_stop_signals,
                         fit)


def _data(n=90, d=12, seed=1):
    rng = np.random.default_rng(seed)
    return rng.random((n, d)).astype(np.float32), rng.random((30, d)).astype(np.float32)


def _model(d=12, latent=3, seed=0):
    return npvae.VAE(d, latent, hidden=(10,), seed=seed)


def _reference_fit(model, x, epochs, batch_size, seed, n_samples, lr=1e-3):
    """The loop written the plain way: fancy-indexed batches and freshly allocated noise."""
    rng = np.random.default_rng(seed)
    opt = npvae.Adam(lr=lr)
    for _ in range(epochs):
        order = rng.permutation(x.shape[0])
        for start in range(0, x.shape[0], batch_size):
            xb = x[order[start:start + batch_size]]
            eps = rng.standard_normal((n_samples, xb.shape[0], model.latent_dim), dtype=model.dtype)
            model._loss_and_grads(xb, eps, 1.0)
            opt.step(model.flat_params, model.flat_grads)


@pytest.mark.parametrize("batch_size,n_samples", [(16, 1), (25, 3), (90, 2)])
def test_buffered_loop_matches_plain_loop_bit_for_bit(batch_size, n_samples):
    x, _ = _data()
    a, b = _model(), _model()
    fit(a, x, epochs=2, batch_size=batch_size, seed=4, n_samples=n_samples)
    _reference_fit(b, x, 2, batch_size, 4, n_samples)
    assert np.array_equal(a.flat_params, b.flat_params)


def test_same_seed_same_parameters_and_history_fields():
    x, xv = _data()
    a, b = _model(), _model()
    ha = fit(a, x, xv, epochs=2, batch_size=32, seed=7)
    hb = fit(b, x, xv, epochs=2, batch_size=32, seed=7)
    assert np.array_equal(a.flat_params, b.flat_params)
    assert ha.epoch == [1, 2] and ha.train_loss == hb.train_loss and ha.val_kl == hb.val_kl
    for key in ("train_rec", "train_kl", "val_loss", "val_rec", "seconds"):
        assert len(getattr(ha, key)) == 2
    assert math.isclose(ha.train_loss[0], ha.train_rec[0] + ha.train_kl[0])


def _stop_after(n_calls):
    calls = [0]

    def stop():
        calls[0] += 1
        return calls[0] >= n_calls
    return stop


# 3 steps per epoch; stop() is asked after steps 1 and 2 and after each epoch, so the
# 2nd call stops mid-epoch 1, the 3rd at the end of epoch 1, the 5th mid-epoch 2.
@pytest.mark.parametrize("stop_at", [2, 3, 5])
def test_stop_then_resume_equals_uninterrupted(stop_at):
    x, xv = _data()
    whole = _model()
    opt_whole = npvae.Adam(lr=2e-3)
    h_whole = fit(whole, x, xv, epochs=3, batch_size=32, optimizer=opt_whole, seed=5, n_samples=2)

    part = _model()
    opt = npvae.Adam(lr=2e-3)
    state = FitState.start(5)
    with pytest.raises(TrainingInterrupted) as info:
        fit(part, x, xv, epochs=3, batch_size=32, optimizer=opt, seed=5, n_samples=2,
            state=state, stop=_stop_after(stop_at))
    assert info.value.state is state
    # Carry everything through copies, as a checkpoint would.
    params = part.flat_params.copy()
    opt_state = opt.state_dict()
    resumed_state = FitState(rng=FitState.rng_from_json(state.rng_state_json()), epoch=state.epoch,
                             step=state.step, order=None if state.order is None else state.order.copy(),
                             sums=list(state.sums), seconds=state.seconds,
                             history=History.from_dict(state.history.as_dict()))
    fresh = _model(seed=99)
    fresh.flat_params[...] = params
    opt2 = npvae.Adam(lr=2e-3)
    opt2.load_state_dict(opt_state)
    h = fit(fresh, x, xv, epochs=3, batch_size=32, optimizer=opt2, seed=5, n_samples=2,
            state=resumed_state)
    assert np.array_equal(fresh.flat_params, whole.flat_params)
    assert h.train_loss == h_whole.train_loss and h.val_loss == h_whole.val_loss
    assert opt2.t == opt_whole.t


def test_stop_state_records_the_step_boundary():
    x, _ = _data()
    state = FitState.start(0)
    with pytest.raises(TrainingInterrupted):
        fit(_model(), x, epochs=2, batch_size=32, state=state, stop=_stop_after(2))
    assert (state.epoch, state.step) == (0, 2) and state.order is not None
    assert state.sums[0] > 0 and len(state.history) == 0


def test_divergence_names_epoch_and_step():
    x, _ = _data()
    model = _model()
    with pytest.raises(TrainingDiverged) as info, np.errstate(all="ignore"):
        fit(model, x, epochs=3, batch_size=30, optimizer=npvae.SGD(lr=1e30), seed=0)
    err = info.value
    assert err.epoch == 1 and err.step >= 2 and not math.isfinite(err.loss)
    assert "epoch 1" in str(err) and "learning rate" in str(err)


def test_dynamic_binarization_is_seeded_and_changes_training():
    x, _ = _data()
    a, b, c = _model(), _model(), _model()
    fit(a, x, epochs=1, batch_size=32, seed=3, binarize=True)
    fit(b, x, epochs=1, batch_size=32, seed=3, binarize=True)
    fit(c, x, epochs=1, batch_size=32, seed=3)
    assert np.array_equal(a.flat_params, b.flat_params)
    assert not np.array_equal(a.flat_params, c.flat_params)


def test_rng_state_json_round_trip_continues_the_stream():
    state = FitState.start(11)
    state.rng.standard_normal(5)
    copy = FitState.rng_from_json(state.rng_state_json())
    assert np.array_equal(copy.standard_normal(4), state.rng.standard_normal(4))


def test_line_progress_prints_one_line_per_epoch():
    x, xv = _data()
    out = io.StringIO()
    fit(_model(), x, xv, epochs=3, batch_size=32, progress=LineProgress(out))
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and lines[0].startswith("epoch 1/3") and "val" in lines[0]


def test_bar_progress_writes_a_bar_per_epoch():
    x, _ = _data()
    out = io.StringIO()
    fit(_model(), x, epochs=2, batch_size=32, progress=BarProgress(out))
    text = out.getvalue()
    assert "epoch 1/2" in text and "epoch 2/2" in text and "train" in text


def test_make_progress_picks_lines_off_a_terminal():
    assert isinstance(make_progress("auto", io.StringIO()), LineProgress)
    assert type(make_progress("none")) is Progress
    with pytest.raises(ValueError):
        make_progress("loud")


def test_catch_stop_signals_sets_the_flag_then_restores_the_handler():
    before = signal.getsignal(signal.SIGINT)
    with catch_stop_signals() as flag:
        assert not flag()
        os.kill(os.getpid(), signal.SIGINT)
        assert flag()
    assert signal.getsignal(signal.SIGINT) is before


class _MeasureSteps(Progress):
    """Traces memory over the middle steps of the first epoch (full batches only)."""

    def __init__(self, first, last):
        self.first, self.last, self.count, self.peak = first, last, 0, None

    def step(self, running_loss):
        import tracemalloc

        self.count += 1
        if self.count == self.first:
            tracemalloc.start()
            self.base, _ = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
        elif self.count == self.last:
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            self.peak = peak - self.base


def test_training_steps_allocate_no_batch_sized_arrays():
    """With the fused backend, a fit step at a fixed batch size makes no new array: the batch
    is gathered and the noise drawn into buffers made once per fit call. One batch here is
    (128, 784) float32 = 401 kB and its noise 10 kB; Python's small objects stay under 8 kB."""
    from npvae.fast.backend import use_backend

    rng = np.random.default_rng(0)
    x = (rng.random((1024, 784)) < 0.3).astype(np.float32)
    with use_backend("numba"):
        model = npvae.VAE(784, 20, hidden=(64,), seed=0)
        fit(model, x[:256], epochs=1, batch_size=128)  # compile and warm up
        probe = _MeasureSteps(first=3, last=7)
        fit(model, x, epochs=1, batch_size=128, progress=probe)
    assert probe.peak is not None and probe.peak < 8192, probe.peak
