"""VAEEstimator: scikit-learn's own estimator checks, and what the estimator promises on
top of them (settings checked by npvae.settings, the ELBO as the score, pickling,
determinism, pipelines and grid search)."""
import pickle
import re

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, KFold, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import npvae
from npvae import VAE, Adam, VAEEstimator
from npvae.settings import SETTINGS, SettingError

FAST = dict(hidden=(32,), epochs=5, batch_size=64)  # a few tenths of a second on digits


@pytest.fixture(scope="module", autouse=True)
def one_blas_thread():
    """One BLAS thread: these matrices are small, and on a busy machine more threads only
    slow the suite down (four times, on two shared cores)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture(scope="module")
def digits():
    """(X in [0, 1], y): the 1,797 8x8 digits, scaled by MinMaxScaler."""
    X, y = load_digits(return_X_y=True)
    return MinMaxScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def fitted(digits):
    """A Bernoulli VAEEstimator fitted on digits (not to be changed by a test)."""
    return VAEEstimator(latent_dim=3, likelihood="bernoulli", random_state=0, **FAST).fit(digits[0])


# ------------------------------------------------------------------ scikit-learn's checks


@parametrize_with_checks([
    VAEEstimator(),  # the defaults, as a user gets them (about 4 s for the whole suite)
    VAEEstimator(hidden=(8,), epochs=2, batch_size=16, dtype="float32", random_state=0),
])
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


# ------------------------------------------------------------------ parameters


def test_the_constructor_stores_its_arguments_untouched_and_clone_copies_them():
    hidden = [16, 8]  # a list stays the caller's list until fit
    est = VAEEstimator(4, hidden=hidden, beta=0.5, random_state=3)
    assert est.hidden is hidden and est.latent_dim == 4 and est.beta == 0.5
    params = est.get_params()
    copy = clone(est)
    assert copy is not est and copy.get_params() == params
    assert copy.set_params(latent_dim=7, lr=1e-2) is copy
    assert copy.get_params() == {**params, "latent_dim": 7, "lr": 1e-2}
    assert est.get_params() == params  # the original is untouched


def test_clone_of_a_fitted_estimator_is_unfitted(fitted):
    copy = clone(fitted)
    assert copy.get_params() == fitted.get_params()
    assert not hasattr(copy, "model_") and not hasattr(copy, "n_features_in_")


@pytest.mark.parametrize("name, value", [
    ("latent_dim", 0), ("beta", -1), ("hidden", (0,)), ("lr", 0.0), ("epochs", 2.0),
    ("activation", "swish"), ("likelihood", "poisson"), ("clip_norm", -1.0),
])
def test_a_bad_setting_is_refused_at_fit_with_the_tables_message(digits, name, value):
    est = VAEEstimator(**{**FAST, name: value})  # constructing it never checks
    expected = f"VAEEstimator: {name} must be {SETTINGS[name].text}, got {value!r}"
    with pytest.raises(SettingError, match=f"^{re.escape(expected)}$"):
        est.fit(digits[0])
    assert not hasattr(est, "model_")


def test_clashing_settings_are_refused_through_the_tables_combination_rule(digits):
    est = VAEEstimator(objective="iwae", beta=0.5, **FAST)
    with pytest.raises(ValueError, match="^VAEEstimator: the IWAE objective is defined for "
                                         "beta = 1 only, got beta 0.5$"):
        est.fit(digits[0])


def test_a_bad_dtype_or_random_state_is_refused_at_fit(digits):
    with pytest.raises(ValueError, match="dtype must be float32 or float64, got float16"):
        VAEEstimator(dtype="float16", **FAST).fit(digits[0])
    with pytest.raises(ValueError, match="[Ss]eed"):  # NumPy's words, via check_random_state
        VAEEstimator(random_state=-1, **FAST).fit(digits[0])


def test_the_bernoulli_likelihood_refuses_data_outside_0_1(digits):
    X = digits[0] * 16  # the raw pixel range
    with pytest.raises(ValueError, match=re.escape("outside the support [0, 1] of the "
                                                   "bernoulli likelihood")):
        VAEEstimator(likelihood="bernoulli", **FAST).fit(X)


def test_the_tags_follow_dtype_and_likelihood():
    tags = VAEEstimator(dtype="float32", likelihood="bernoulli").__sklearn_tags__()
    assert tags.transformer_tags.preserves_dtype == ["float32"]
    assert tags.input_tags.positive_only and not tags.input_tags.allow_nan
    tags = VAEEstimator().__sklearn_tags__()
    assert tags.transformer_tags.preserves_dtype == ["float64"]
    assert not tags.input_tags.positive_only and not tags.non_deterministic


# ------------------------------------------------------------------ fitting


def test_fit_trains_the_model_npvae_fit_trains_from_the_same_seed(digits, fitted):
    X = digits[0]
    model = VAE(X.shape[1], 3, hidden=(32,), likelihood="bernoulli", dtype=np.float64, seed=0)
    history = npvae.fit(model, X, epochs=5, batch_size=64, optimizer=Adam(lr=3e-3), seed=0)
    np.testing.assert_array_equal(fitted.model_.flat_params, model.flat_params)
    assert fitted.history_.train_loss == history.train_loss
    assert fitted.n_iter_ == 5 == len(fitted.history_) and fitted.seed_ == 0
    assert fitted.n_features_in_ == 64


def test_the_same_random_state_gives_the_same_model(digits):
    X = digits[0][:300]
    a, b, c = (VAEEstimator(random_state=seed, **FAST).fit(X) for seed in (5, 5, 6))
    np.testing.assert_array_equal(a.model_.flat_params, b.model_.flat_params)
    assert not np.array_equal(a.model_.flat_params, c.model_.flat_params)
    rs = np.random.RandomState(1)  # a RandomState gives a new seed at every fit
    d, e = VAEEstimator(random_state=rs, **FAST), VAEEstimator(random_state=rs, **FAST)
    assert d.fit(X).seed_ != e.fit(X).seed_


def test_verbose_prints_one_line_per_epoch(digits, capsys):
    VAEEstimator(verbose=1, random_state=0, **FAST).fit(digits[0][:200])
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in lines] == [f"{e}/5" for e in range(1, 6)]
    VAEEstimator(random_state=0, **FAST).fit(digits[0][:200])
    assert capsys.readouterr().out == ""


# ------------------------------------------------------------------ the transformer


def test_transform_and_inverse_transform_are_the_posterior_and_decoder_means(digits, fitted):
    X = digits[0][:900]  # one batch of the estimator's (bigger ones may differ in the last bit)
    Z = fitted.transform(X)
    assert Z.shape == (X.shape[0], 3) and Z.dtype == np.float64
    np.testing.assert_array_equal(Z, fitted.model_.encode(X)[0])
    X_back = fitted.inverse_transform(Z)
    assert X_back.shape == X.shape
    np.testing.assert_array_equal(X_back, fitted.model_.decode(Z))
    assert np.mean((X_back - X) ** 2) < np.mean((X - X.mean(axis=0)) ** 2)  # better than the mean
    with pytest.raises(ValueError, match=re.escape("expected (batch, latent_dim) = (B, 3)")):
        fitted.inverse_transform(Z[:, :2])


def test_feature_names_out_are_prefixed_by_the_class_name(fitted):
    names = fitted.get_feature_names_out()
    assert list(names) == ["vaeestimator0", "vaeestimator1", "vaeestimator2"]


def test_sample_decodes_prior_draws_from_random_state(fitted):
    x = fitted.sample(6, random_state=0)
    assert x.shape == (6, 64) and ((x >= 0) & (x <= 1)).all()
    z = np.random.default_rng(0).standard_normal((6, 3))
    np.testing.assert_array_equal(x, fitted.model_.decode(z))
    np.testing.assert_array_equal(fitted.sample(6, random_state=0), x)
    assert not np.array_equal(fitted.sample(6, random_state=1), x)
    assert fitted.sample().shape == (1, 64)
    with pytest.raises(ValueError, match=r"^VAEEstimator\.sample: n_samples must be an "
                                         r"integer >= 1, got 0$"):
        fitted.sample(0)


# ------------------------------------------------------------------ scores


def test_score_samples_is_the_models_elbo_and_score_its_mean(digits, fitted):
    X = digits[0][:900]  # one batch of the estimator's (bigger ones may differ in the last bit)
    scores = fitted.score_samples(X)
    assert scores.shape == (X.shape[0],)
    terms = fitted.model_.elbo(X, eps=fitted._score_noise(X))
    np.testing.assert_array_equal(scores, terms.elbo)
    assert fitted.score(X) == pytest.approx(np.mean(terms.elbo), rel=1e-12)
    np.testing.assert_array_equal(fitted.score_samples(X), scores)  # the same noise every call


def test_the_scores_noise_is_independent_standard_normal_noise(digits, fitted):
    """Against fresh N(0, I) noise each example's score differs by noise alone, so the mean
    difference is within a few standard errors of 0 (eps = 0, or noise shared by every
    example, fails)."""
    X = digits[0]
    eps = fitted._score_noise(X)[0]  # (n, J)
    assert abs(eps.mean()) < 0.05 and abs(eps.std() - 1) < 0.05
    assert abs(np.corrcoef(eps[:-1, 0], eps[1:, 0])[0, 1]) < 0.1
    fresh = fitted.model_.elbo(X, eps=np.random.default_rng(7).standard_normal((1, *eps.shape))).elbo
    d = fitted.score_samples(X) - fresh
    assert abs(d.mean()) < 4 * d.std() / np.sqrt(d.size)


def test_an_examples_score_does_not_depend_on_the_other_rows(digits, fitted):
    X = digits[0]
    full = fitted.score_samples(X)
    np.testing.assert_allclose(fitted.score_samples(X[10:13]), full[10:13], rtol=1e-12)
    np.testing.assert_allclose(fitted.score_samples(X[::-1]), full[::-1], rtol=1e-12)


# ------------------------------------------------------------------ pickling


def test_a_pickled_estimator_gives_identical_outputs_and_a_sound_model(digits, fitted):
    X = digits[0]
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.transform(X), fitted.transform(X))
    np.testing.assert_array_equal(restored.score_samples(X), fitted.score_samples(X))
    np.testing.assert_array_equal(restored.sample(4, random_state=2), fitted.sample(4, random_state=2))
    model = restored.model_
    assert all(np.shares_memory(view, model.flat_params) for view in model.params.values())
    before = restored.transform(X)
    npvae.fit(model, X, epochs=1, batch_size=256)  # training the restored model moves it
    assert not np.array_equal(restored.transform(X), before)
    np.testing.assert_array_equal(fitted.transform(X), before)  # and not the original


# ------------------------------------------------------------------ in scikit-learn's tools


def test_a_pipeline_of_scaler_vae_and_classifier_beats_chance_on_digits():
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=y,
                                                        random_state=0)
    pipe = make_pipeline(MinMaxScaler(),
                         VAEEstimator(latent_dim=4, likelihood="bernoulli", hidden=(64,),
                                      epochs=20, random_state=0),
                         LogisticRegression(max_iter=2000))
    accuracy = pipe.fit(X_train, y_train).score(X_test, y_test)
    # Chance is 0.1; 0.84 when written. The untrained encoder's 4 features give about 0.47.
    assert accuracy > 0.7


def test_grid_search_picks_the_setting_of_highest_held_out_elbo(digits):
    X = digits[0]
    base = VAEEstimator(likelihood="bernoulli", hidden=(64,), epochs=10, random_state=0)
    cv = KFold(3, shuffle=True, random_state=0)
    search = GridSearchCV(base, {"latent_dim": [1, 8]}, cv=cv).fit(X)
    held_out = {}  # each setting's mean ELBO on the held-out folds, computed by hand
    for latent_dim in (1, 8):
        est = clone(base).set_params(latent_dim=latent_dim)
        held_out[latent_dim] = np.mean([clone(est).fit(X[train]).score(X[test])
                                        for train, test in cv.split(X)])
    np.testing.assert_allclose(search.cv_results_["mean_test_score"], [held_out[1], held_out[8]],
                               rtol=1e-12)
    assert search.best_params_ == {"latent_dim": max(held_out, key=held_out.get)} == {"latent_dim": 8}
    assert search.best_estimator_.model_.latent_dim == 8
