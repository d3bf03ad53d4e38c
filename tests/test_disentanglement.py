"""npvae.disentanglement on constructed codes whose answers are known.

The factors are a full factorial grid of 3 x 4 x 5 levels (each combination once, or
repeated), so in the data every factor is exactly independent of the others: a code
dimension that is a function of one factor carries exactly 0 information about the rest.
Each test names the wrong implementations it catches.
"""
import numpy as np
import pytest

import npvae
from npvae.disentanglement import (discrete_entropy, discrete_mutual_information, discretize,
                                   disentanglement_metrics, factor_vae_score,
                                   mutual_information_gap)

LEVELS = (3, 4, 5)
VOTES = dict(n_votes_train=1000, n_votes_test=2000)  # enough for a chance-level test, and fast


def grid(repeats=1):
    """The factors: every combination of LEVELS, `repeats` times over, int64 (60 repeats, 3)."""
    axes = np.meshgrid(*[np.arange(n) for n in LEVELS], indexing="ij")
    return np.tile(np.stack(axes, axis=-1).reshape(-1, len(LEVELS)), (repeats, 1))


def perfect_code(repeats=4):
    """(codes (N, 5), factors (N, 3)): each factor in a dimension of its own, through a
    different strictly monotone map (sqrt for v_0, decreasing for v_2), in an order that is
    not the factors', plus a noise dimension and a collapsed (constant) one.

    The noise takes the r-th of `repeats` random values in the r-th copy of the grid, so
    every grid cell holds the same noise values: it is exactly independent of the factors.
    In every dimension the levels are more than a bin width (range / 20) apart."""
    factors = grid(repeats)
    copy = np.repeat(np.arange(repeats), len(factors) // repeats)
    noise = np.random.default_rng(0).normal(size=repeats)[copy]
    codes = np.stack([np.sqrt(factors[:, 0] + 1.0), noise, 1.0 - 3.0 * factors[:, 2],
                      np.zeros(len(factors)), 0.5 * factors[:, 1]], axis=1)
    return codes, factors


def noisy_code(noise=0.2, repeats=10, seed=0):
    """(codes (N, 3), factors (N, 3)): z_k = v_k / (L_k - 1) + noise * standard normal: each
    factor in its own dimension, but blurred (MIG 0.51 at noise 0.2, 0.21 at 0.4)."""
    factors = grid(repeats)
    rng = np.random.default_rng(seed)
    codes = factors / (np.array(LEVELS) - 1.0) + noise * rng.standard_normal(factors.shape)
    return codes, factors


# --------------------------------------------------------------------------- discrete information


def test_discrete_entropy_and_information_by_hand():
    """H of [0, 0, 1, 2] is 0.5 log 2 + 0.5 log 4 = 1.5 log 2; I(X; X) = H(X); two grid
    factors are independent (exactly 0); and two 2 x 2 tables worked out by hand:

        counts [[3, 1], [1, 3]] (N = 8): I = 3/4 log(3/2) - 1/4 log 2,
        counts [[2, 0], [1, 1]] (N = 4): margins (2, 2) and (3, 1),
            I = 1/2 log(4 * 2 / (2 * 3)) + 1/4 log(4 / (2 * 3)) + 1/4 log(4 / 2) = 3/4 log(4/3).

    Fails for a logarithm in another base, a missing minus sign, the joint count in place
    of N in the ratio, and one margin used for both variables (the second table's margins
    differ)."""
    assert discrete_entropy(np.array([0, 0, 1, 2])) == pytest.approx(1.5 * np.log(2), rel=1e-14)
    assert discrete_entropy(np.array([7, 7, 7])) == 0.0
    x = np.array([5, 1, 1, 3, 5, 5, 2, 1, 0])
    assert discrete_mutual_information(x, x) == pytest.approx(discrete_entropy(x), rel=1e-14)
    factors = grid()
    assert discrete_mutual_information(factors[:, 0], factors[:, 2]) == 0.0
    a = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    b = np.array([0, 0, 0, 1, 0, 1, 1, 1])  # table [[3, 1], [1, 3]]
    assert discrete_mutual_information(a, b) == pytest.approx(0.75 * np.log(1.5) - 0.25 * np.log(2), rel=1e-14)
    a = np.array([0, 0, 1, 1])
    b = np.array([0, 0, 0, 1])  # table [[2, 0], [1, 1]]
    assert discrete_mutual_information(a, b) == pytest.approx(0.75 * np.log(4 / 3), rel=1e-14)
    assert discrete_mutual_information(b, a) == pytest.approx(0.75 * np.log(4 / 3), rel=1e-14)


def test_discretize_by_hand():
    """Four equal-width bins over [0, 1]: 0.24 goes to bin 0, 0.25 to bin 1, the maximum to
    the last bin (not to a fifth), and a constant column to bin 0. Fails for bins over
    [0, max] instead of [min, max] (the shifted column), or without the clip at the top."""
    codes = np.array([[0.0, 2.0, 5.0], [0.24, 2.24, 5.0], [0.25, 2.25, 5.0], [1.0, 3.0, 5.0]])
    np.testing.assert_array_equal(discretize(codes, n_bins=4), [[0, 0, 0], [0, 0, 0], [1, 1, 0], [3, 3, 0]])


# --------------------------------------------------------------------------- the MIG


def test_perfect_code_has_mig_one():
    """Each factor determines one dimension and no other dimension says anything about it
    (the grid's factors are independent, the noise and the constant dimension too), so each
    gap is H(v_k) / H(v_k) = 1. The MI matrix shows which dimension holds which factor: I =
    log L_k in that cell (L_k equally frequent levels in distinct bins), exactly 0 elsewhere.

    Fails for a gap not divided by the entropy (the gaps would be log 3, log 4, log 5), for
    dimensions matched to factors by position (dimension k for factor k), for entropies in
    another base than the information, and for bins that merge levels."""
    codes, factors = perfect_code()
    mig = mutual_information_gap(codes, factors)
    assert mig.score == pytest.approx(1.0, abs=1e-14)
    np.testing.assert_allclose(mig.gaps, 1.0, atol=1e-14)
    np.testing.assert_allclose(mig.entropies, np.log(LEVELS), rtol=1e-14)
    expected = np.zeros((5, 3))
    expected[0, 0], expected[4, 1], expected[2, 2] = np.log(LEVELS)
    np.testing.assert_allclose(mig.mutual_information, expected, rtol=1e-14, atol=1e-15)


def test_rotated_code_has_mig_one_third():
    """v_0 and v_1, scaled to a = v_0 / 2 and b = v_1 / 3 in [0, 1], mixed by a 45 degree
    rotation: z_0 = (a - b) / sqrt 2, z_1 = (a + b) / sqrt 2; z_2 = v_2 as before.

    Relabelling v_1's levels as 3 - v_1 (b -> 1 - b, which leaves the grid as it is) turns
    z_0 into z_1 - 1 / sqrt 2, a shift, which equal-width bins ignore: so I(z_0; v_0) =
    I(z_1; v_0) and v_0's gap is exactly 0. For v_1 likewise (a -> 1 - a turns z_0 into
    1 / sqrt 2 - z_1; the values of a +- b are multiples of 1/6, more than the bin width
    1/10 apart, so each has its own bin and the reflection keeps the information). Hence
    gaps (0, 0, 1) and MIG 1/3, against 1 for the unrotated code, while each rotated
    dimension still carries most of each factor (I > 0.8 H).

    Fails for the largest information in place of the gap (MIG 0.94 here), and for a gap
    to the smallest instead of the second largest."""
    factors = grid()
    a, b = factors[:, 0] / 2, factors[:, 1] / 3
    c = np.cos(np.pi / 4)
    codes = np.stack([c * a - c * b, c * a + c * b, factors[:, 2]], axis=1)
    mig = mutual_information_gap(codes, factors)
    np.testing.assert_allclose(mig.gaps, [0.0, 0.0, 1.0], atol=1e-14)
    assert mig.score == pytest.approx(1 / 3, abs=1e-14)
    assert (mig.mutual_information[:2, :2] > 0.8 * mig.entropies[:2]).all()
    unrotated = mutual_information_gap(np.stack([a, b, factors[:, 2]], axis=1), factors)
    assert unrotated.score == pytest.approx(1.0, abs=1e-14)


def test_one_dimension_carrying_two_factors():
    """z_0 = 10 v_0 + v_1, z_1 = v_2. The MIG does not penalise this: z_0 determines v_0 and
    z_1 knows nothing of it, so v_0's gap is 1. v_1's gap is below 1 only through the bins:
    z_0 in {0..3, 10..13, 20..23} falls into floor(20 z_0 / 23), which puts z_0 = 0, 1 into
    bin 0 and 22, 23 into bin 19 (23 clipped from 20); so v_1 is unresolved in 2 of the 12
    values of z_0, H(v_1 | bin) = (2/12) log 2, and the gap is 1 - (log 2 / 6) / log 4 = 5/6.

    The FactorVAE score does penalise it: fixing v_0 stills z_0, fixing v_2 stills z_1, but
    fixing v_1 stills nothing (z_0 still moves by 10 v_0), so v_1's votes go to z_0 and z_1,
    where v_0 and v_2 outvote them: the classifier never predicts v_1 and is right on the
    2/3 of the test votes that fix v_0 or v_2 (binomial sd 0.011 with 2,000 votes)."""
    factors = grid(repeats=4)
    codes = np.stack([10.0 * factors[:, 0] + factors[:, 1], factors[:, 2]], axis=1)
    mig = mutual_information_gap(codes, factors)
    np.testing.assert_allclose(mig.gaps, [1.0, 5 / 6, 1.0], atol=1e-14)
    fv = factor_vae_score(codes, factors, **VOTES)
    np.testing.assert_array_equal(fv.votes.argmax(axis=1), [0, 2])
    assert abs(fv.score - 2 / 3) < 0.05


def test_shuffled_code_scores_near_zero_and_chance():
    """The perfect code (grid repeated 10 times, N = 600) with its rows shuffled, so z no
    longer goes with the factors. Every I(z_j; v_k) is then only the plug-in bias, about
    (b - 1)(L_k - 1) / (2N) nats (b distinct values of z_j: 2 N I is about chi-squared),
    at most 9 * 4 / 1200 = 0.03 nats (the 10-valued noise against v_2), 0.02 of log 5; the
    MIG, a difference of two such terms, stays below 0.05 (largest over 300 shuffles:
    0.016). The FactorVAE classifier is right about 1/3 of the time, chance for 3 factors
    (over 300 shuffles 0.35 +- 0.02: a little above 1/3, because the test votes come from
    the same rows as the training votes and so share their accidents).

    Fails for a FactorVAE score that finds the fixed factor's dimension by anything but the
    codes of the drawn rows (e.g. rows drawn from the whole data, not from the fixed level,
    would score chance on the perfect code too: that is the perfect-code test's job)."""
    codes, factors = perfect_code(repeats=10)
    assert mutual_information_gap(codes, factors).score == pytest.approx(1.0, abs=1e-14)
    shuffled = codes[np.random.default_rng(3).permutation(len(codes))]
    assert mutual_information_gap(shuffled, factors).score < 0.05
    assert abs(factor_vae_score(shuffled, factors, **VOTES, seed=1).score - 1 / 3) < 0.1


def test_single_level_factor_is_left_out():
    """A fourth factor fixed at one level has H = 0: its gap is NaN and the MIG is the mean
    over the other three; the FactorVAE score never picks it (chance is then 1/3, not 1/4).
    Fails for a mean over all factors (NaN) or for votes that fix the constant factor."""
    codes, factors = perfect_code()
    factors = np.column_stack([factors, np.full(len(factors), 2)])
    mig = mutual_information_gap(codes, factors)
    assert np.isnan(mig.gaps[3]) and mig.score == pytest.approx(1.0, abs=1e-14)
    fv = factor_vae_score(codes, factors, **VOTES)
    assert fv.score == 1.0 and fv.votes[:, 3].sum() == 0


# --------------------------------------------------------------------------- the FactorVAE score


def test_perfect_code_has_factor_vae_score_one():
    """Fixing v_k stills exactly the dimension of v_k, and every other kept dimension still
    moves, so every vote is right: train and test accuracy 1, the votes only in the three
    factor dimensions, the constant dimension pruned. Fails for the dimension of largest
    variance as the vote, for votes that fix one factor but label another, and for a
    classifier indexed the wrong way round (factor -> dimension)."""
    codes, factors = perfect_code()
    fv = factor_vae_score(codes, factors, **VOTES)
    assert fv.score == 1.0 and fv.train_accuracy == 1.0
    np.testing.assert_array_equal(fv.active, [True, True, True, False, True])
    assert fv.votes.sum() == VOTES["n_votes_train"]
    np.testing.assert_array_equal(fv.votes.argmax(axis=1)[[0, 4, 2]], [0, 1, 2])
    assert fv.votes[[1, 3]].sum() == 0 and (fv.votes[[0, 4, 2], [0, 1, 2]] > 0).all()


def test_training_votes_are_memorised_test_votes_are_not():
    """20 dimensions of pure noise and only 40 training votes, 2 per dimension: the majority
    vote fits those few votes well (train accuracy = the sum over dimensions of the largest
    vote count, / 40: 0.67 +- 0.05 for 40 votes spread at random over 20 dimensions and 3
    factors, above 0.55 with probability 0.99), but it has learnt nothing, so on 4,000
    fresh votes it is right about 1/3 of the time (chance). Fails for a score taken on the training
    votes, and for a train accuracy that is not the majority's share of them."""
    factors = grid(repeats=10)
    codes = np.random.default_rng(10).normal(size=(len(factors), 20))
    fv = factor_vae_score(codes, factors, n_votes_train=40, n_votes_test=4000, seed=11)
    assert fv.train_accuracy == fv.votes.max(axis=1).sum() / 40
    assert fv.train_accuracy > 0.55
    assert abs(fv.score - 1 / 3) < 0.1


def test_scaling_a_dimension_changes_nothing():
    """The noisy code with its dimensions multiplied by 2, 1 and 0.2 (all kept: 0.2 / 2 is
    above the pruning ratio 0.05): after division by each dimension's standard deviation
    the votes are the same as for the unscaled code, and the score is high (at noise 0.2
    the fixed factor's dimension has the least variance nearly always). Fails without the
    normalisation: the dimension scaled by 0.2 then has the least variance in most votes
    and the score falls to about 1/3. (Scales 100 times apart would prune the smaller:
    the pruning rule compares the dimensions' scales, by design.)"""
    codes, factors = noisy_code()
    plain = factor_vae_score(codes, factors, **VOTES, seed=4)
    scaled = factor_vae_score(codes * np.array([2.0, 1.0, 0.2]), factors, **VOTES, seed=4)
    assert plain.score > 0.9
    assert scaled.score == plain.score
    np.testing.assert_array_equal(scaled.votes, plain.votes)


def test_permuting_dimensions_changes_nothing():
    """Permuting the code dimensions permutes the rows of the MI matrix and of the votes and
    leaves both scores as they are (on the noisy code at noise 0.4, whose scores are not 1),
    with an extra noise dimension. Fails for any metric that pairs dimension k with factor k."""
    codes, factors = noisy_code(noise=0.4)
    codes = np.column_stack([codes, np.random.default_rng(5).normal(size=len(codes))])
    perm = np.array([2, 3, 0, 1])
    mig, mig_p = mutual_information_gap(codes, factors), mutual_information_gap(codes[:, perm], factors)
    assert 0.1 < mig.score < 0.9
    assert mig_p.score == mig.score
    np.testing.assert_array_equal(mig_p.mutual_information, mig.mutual_information[perm])
    fv, fv_p = (factor_vae_score(c, factors, **VOTES, seed=6) for c in (codes, codes[:, perm]))
    assert fv.score < 1.0 and fv_p.score == fv.score
    np.testing.assert_array_equal(fv_p.votes, fv.votes[perm])


def test_pruning_rule_and_seed():
    """Standard deviations 1, 0.051, 0.049 and 0 (relative to the largest): with prune=0.05
    the first two are kept; prune=0 keeps all but the constant one. The same seed gives the
    same votes, a Generator is accepted, another seed gives other votes. Fails for an
    absolute threshold on the variance (0.051^2 < 0.05), for a rule inverted, and for a
    constant dimension kept at prune=0 (a division by a zero standard deviation)."""
    factors = grid(repeats=2)
    standard = (factors - factors.mean(axis=0)) / factors.std(axis=0)
    codes = np.column_stack([standard * [1.0, 0.051, 0.049], np.zeros(len(factors))])
    np.testing.assert_array_equal(factor_vae_score(codes, factors, **VOTES).active, [True, True, False, False])
    np.testing.assert_array_equal(factor_vae_score(codes, factors, **VOTES, prune=0).active,
                                  [True, True, True, False])
    codes[:, 2] += 0.3 * np.random.default_rng(7).normal(size=len(codes))  # votes that vary with the seed
    first, again = (factor_vae_score(codes, factors, **VOTES, prune=0, seed=8) for _ in range(2))
    from_rng = factor_vae_score(codes, factors, **VOTES, prune=0, seed=np.random.default_rng(8))
    other = factor_vae_score(codes, factors, **VOTES, prune=0, seed=9)
    for same in (again, from_rng):
        assert same.score == first.score and same.train_accuracy == first.train_accuracy
        np.testing.assert_array_equal(same.votes, first.votes)
    assert not np.array_equal(other.votes, first.votes)


# --------------------------------------------------------------------------- the model wrapper


class FixedCodes:
    """A stand-in model: row n of x holds the number n, encode gives (codes[n], zeros) and
    records the size of each batch it is given."""

    def __init__(self, codes):
        self.codes, self.batches = codes, []

    def check_input(self, x, check_support=True):
        return np.asarray(x, dtype=np.float64)

    def encode(self, x):
        self.batches.append(len(x))
        rows = self.codes[x[:, 0].astype(int)]
        return rows.astype(np.float32), np.zeros_like(rows)


def test_disentanglement_encodes_in_batches():
    """On the perfect code through a stand-in model: both metrics as computed on the codes
    directly, with x encoded in batches of at most batch_size (7 here: 34 batches, the last
    of 2 rows). Fails for scoring logvar instead of mu, or for dropping the last batch."""
    codes, factors = perfect_code()
    model = FixedCodes(codes)
    x = np.arange(len(codes), dtype=np.float64)[:, None]
    result = disentanglement_metrics(model, x, factors, batch_size=7, **VOTES, seed=2)
    assert model.batches == [7] * 34 + [2]
    assert result.mig.score == pytest.approx(1.0, abs=1e-14) and result.factor_vae.score == 1.0
    direct = factor_vae_score(codes.astype(np.float32), factors, **VOTES, seed=2)
    np.testing.assert_array_equal(result.factor_vae.votes, direct.votes)
    np.testing.assert_array_equal(result.mig.mutual_information,
                                  mutual_information_gap(codes.astype(np.float32), factors).mutual_information)


def test_disentanglement_of_a_real_vae_runs():
    """A real (untrained) VAE: the MI matrix is (latent_dim, K) and the scores lie in [0, 1]."""
    factors = grid()
    x = np.random.default_rng(9).uniform(size=(len(factors), 6))
    model = npvae.VAE(6, 3, hidden=(8,), dtype=np.float64, seed=0)
    result = disentanglement_metrics(model, x, factors, n_votes_train=50, n_votes_test=50)
    assert result.mig.mutual_information.shape == (3, 3)
    assert 0 <= result.mig.score <= 1 and 0 <= result.factor_vae.score <= 1


# --------------------------------------------------------------------------- input checks


@pytest.mark.parametrize("call, message", [
    (lambda c, f: mutual_information_gap(c[:, 0], f), r"codes has shape \(60,\); expected \(N, J\)"),
    (lambda c, f: mutual_information_gap(c[:, :1], f), "codes has 1 dimension; the MIG needs at least 2"),
    (lambda c, f: mutual_information_gap(np.where(c > 1, np.nan, c), f), "codes contains .* NaN or inf"),
    (lambda c, f: mutual_information_gap(c.astype(str), f), "codes has dtype <U.*; expected real numbers"),
    (lambda c, f: mutual_information_gap(c, f.astype(float)), "factors has dtype float64; expected integer"),
    (lambda c, f: mutual_information_gap(c, f[:, 0]), r"factors has shape \(60,\); expected \(N, K\)"),
    (lambda c, f: mutual_information_gap(c, f[:-1]), "factors has 59 rows but the codes have 60"),
    (lambda c, f: mutual_information_gap(c, f, n_bins=1), "n_bins must be at least 2, got 1"),
    (lambda c, f: mutual_information_gap(c, f, n_bins=2.5), "n_bins must be a positive integer"),
    (lambda c, f: mutual_information_gap(c, 0 * f), "every factor has a single level"),
    (lambda c, f: factor_vae_score(c, f, n_per_vote=1), "n_per_vote must be at least 2, got 1"),
    (lambda c, f: factor_vae_score(c, f, n_votes_train=0), "n_votes_train must be a positive integer"),
    (lambda c, f: factor_vae_score(c, f, n_votes_test=-3), "n_votes_test must be a positive integer"),
    (lambda c, f: factor_vae_score(c, f, prune=1.0), r"prune must be a number in \[0, 1\), got 1.0"),
    (lambda c, f: factor_vae_score(c, f, prune="a lot"), "prune must be a number in .*, got 'a lot'"),
    (lambda c, f: factor_vae_score(0 * c, f), "every dimension is constant"),
    (lambda c, f: factor_vae_score(c, 0 * f), "every factor has a single level"),
    (lambda c, f: factor_vae_score(c, f, n_per_vote=10**12), "one vote's codes needs .* above the limit"),
    (lambda c, f: discrete_mutual_information(f[:, 0], f[:-1, 1]), "a and b have 60 and 59 values"),
    (lambda c, f: discrete_entropy(f), r"labels has shape \(60, 3\); expected \(N,\)"),
])
def test_bad_input_is_refused_in_one_line(call, message):
    codes, factors = noisy_code(repeats=1)
    with pytest.raises(ValueError, match=message) as caught:
        call(codes, factors)
    assert "\n" not in str(caught.value)


def test_the_wrapper_checks_before_encoding():
    """A mismatch of factors and x, or a bad setting, is refused before anything is encoded."""
    codes, factors = perfect_code()
    model = FixedCodes(codes)
    x = np.arange(len(codes), dtype=np.float64)[:, None]
    with pytest.raises(ValueError, match="factors has 239 rows but x has 240"):
        disentanglement_metrics(model, x, factors[:-1])
    with pytest.raises(ValueError, match="n_bins must be at least 2"):
        disentanglement_metrics(model, x, factors, n_bins=1)
    with pytest.raises(ValueError, match="n_per_vote must be at least 2"):
        disentanglement_metrics(model, x, factors, n_per_vote=1)
    assert model.batches == []
