"""Disentanglement metrics: does each latent dimension capture one factor of variation?

For data generated from known factors v_1..v_K (an int array (N, K) of level indices, one
column per factor, e.g. shape, scale, orientation, x, y of a sprite), a representation is
disentangled when each factor is carried by one code dimension and each dimension by at
most one factor (Bengio et al., 2013). Both metrics here read the codes z (N, J), e.g. the
posterior means of a VAE, beside the factors.

Mutual information gap (MIG; Chen et al., 2018). For each factor, the information the best
dimension carries about it minus what the second best carries, as a fraction of the
factor's entropy, averaged over the factors:

    MIG = (1/K) sum_k [I(z_(1); v_k) - I(z_(2); v_k)] / H(v_k),

z_(1), z_(2) the dimensions of largest and second largest I(z_j; v_k). Each term lies in
[0, 1] (I(z_j; v_k) <= H(v_k)): 1 when one dimension determines v_k and no other says
anything about it, 0 when two dimensions share it equally. Here I(z_j; v_k) is the plug-in
estimate on the codes binned into equal-width bins (Locatello et al., 2019).

FactorVAE score (Kim & Mnih, 2018). Fix one factor and let the others vary: in a
disentangled code, the dimension of that factor stops moving, so after each dimension is
scaled to unit standard deviation over the data, it has the smallest variance. Each such
draw casts a vote (dimension of least variance, fixed factor); a majority-vote classifier
that maps each dimension to the factor it voted for most is trained on some votes and its
accuracy on further votes is the score: 1 for a disentangled code, about 1/K (chance) for a
code that ignores the factors.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .checks import positive_int
from .limits import check_array

VOTE_BLOCK = 2**22  # the most code values one block of votes gathers at a time (memory only)


class MIG(NamedTuple):
    """The mutual information gap and its pieces (K factors, J code dimensions).

    score: the mean of `gaps` over the factors of more than one level. gaps (K,): each
    factor's gap divided by its entropy, NaN for a factor of a single level.
    mutual_information (J, K): I(z_j; v_k) in nats, which dimension carries which factor.
    entropies (K,): H(v_k) in nats.
    """

    score: float
    gaps: np.ndarray
    mutual_information: np.ndarray
    entropies: np.ndarray


class FactorVAEScore(NamedTuple):
    """The FactorVAE score and its pieces (K factors, J code dimensions).

    score: the majority-vote classifier's accuracy on the test votes (chance: 1 / the
    number of factors of more than one level). train_accuracy: its accuracy on the votes
    it was built from. votes (J, K): the training votes of each (dimension, factor); the
    classifier maps dimension j to votes[j].argmax(). active (J,): the dimensions kept
    (not pruned as collapsed).
    """

    score: float
    train_accuracy: float
    votes: np.ndarray
    active: np.ndarray


class Disentanglement(NamedTuple):
    """Both metrics on the same codes."""

    mig: MIG
    factor_vae: FactorVAEScore


# --------------------------------------------------------------------------- input checks


def _check_codes(codes):
    """codes as a float64 (N, J) array, or a one-line ValueError naming the problem."""
    codes = np.asarray(codes)
    if codes.dtype.kind not in "iuf":
        raise ValueError(f"codes has dtype {codes.dtype}; expected real numbers")
    if codes.ndim != 2 or 0 in codes.shape:
        raise ValueError(f"codes has shape {codes.shape}; expected (N, J) with N, J >= 1")
    if not np.isfinite(codes).all():
        raise ValueError(f"codes contains {int(np.sum(~np.isfinite(codes)))} NaN or inf values")
    return codes.astype(np.float64, copy=False)


def _check_factors(factors, n_rows, rows_of="the codes have"):
    """factors as an integer (n_rows, K) array, or a one-line ValueError naming the problem
    (`rows_of` names the array whose rows they must match, with its verb)."""
    factors = np.asarray(factors)
    if factors.dtype.kind not in "iu":
        raise ValueError(f"factors has dtype {factors.dtype}; expected integer level indices "
                         f"(e.g. factors.astype(np.int64))")
    if factors.ndim != 2 or factors.shape[1] == 0:
        raise ValueError(f"factors has shape {factors.shape}; expected (N, K) with K >= 1")
    if factors.shape[0] != n_rows:
        raise ValueError(f"factors has {factors.shape[0]} rows but {rows_of} {n_rows}")
    return factors


def _check_codes_factors(codes, factors):
    """(codes, factors) checked as above: float64 (N, J) and integer (N, K)."""
    codes = _check_codes(codes)
    return codes, _check_factors(factors, codes.shape[0])


def _count(value, name, low):
    """value as an int >= low, or a one-line ValueError naming `name`."""
    n = positive_int(value, name)
    if n < low:
        raise ValueError(f"{name} must be at least {low}, got {n}")
    return n


def _check_vote_settings(n_per_vote, n_votes_train, n_votes_test, prune):
    """The FactorVAE score's settings checked: (n_per_vote >= 2, n_votes_train >= 1,
    n_votes_test >= 1, prune in [0, 1))."""
    n_per_vote = _count(n_per_vote, "n_per_vote", 2)
    n_votes_train = _count(n_votes_train, "n_votes_train", 1)
    n_votes_test = _count(n_votes_test, "n_votes_test", 1)
    try:
        fraction = float(prune)
    except (TypeError, ValueError):
        fraction = np.nan
    if isinstance(prune, (bool, np.bool_)) or not 0.0 <= fraction < 1.0:
        raise ValueError(f"prune must be a number in [0, 1), got {prune!r}")
    return n_per_vote, n_votes_train, n_votes_test, fraction


def _labels(labels, name):
    """labels as a non-empty 1-D array, or a one-line ValueError naming `name`."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size == 0:
        raise ValueError(f"{name} has shape {labels.shape}; expected (N,) with N >= 1")
    return labels


# --------------------------------------------------------------------------- discrete information


def _compact(labels):
    """(index, counts): each label's index into its sorted distinct values, (N,), and how
    often each distinct value occurs, (L,)."""
    _, index, counts = np.unique(labels, return_inverse=True, return_counts=True)
    return index.reshape(-1), counts


def _entropy_of_counts(counts):
    """H = sum_a (n_a / N) log(N / n_a), nats, from the counts n_a > 0 of the values."""
    n = counts.sum()
    return float(np.sum(counts * np.log(n / counts)) / n)


def _table(index_a, n_a, index_b, n_b):
    """The contingency table n_ab, (n_a, n_b): how many rows hold value a and value b."""
    check_array((n_a, n_b), 8, "the contingency table")
    return np.bincount(index_a * n_b + index_b, minlength=n_a * n_b).reshape(n_a, n_b)


def _mutual_information_of_table(table):
    """I = sum_ab (n_ab / N) log(N n_ab / (n_a n_b)), nats, over the cells with n_ab > 0.

    The ratio is formed from integer counts, so where the table is exactly the product of
    its margins (N n_ab = n_a n_b) every logarithm is log(1) = 0 and I is exactly 0.
    """
    n = table.sum()
    a, b = np.nonzero(table)
    n_ab = table[a, b]
    ratio = (n * n_ab) / (table.sum(axis=1)[a] * table.sum(axis=0)[b])
    return float(np.sum(n_ab * np.log(ratio)) / n)


def discrete_entropy(labels):
    """The plug-in entropy H(a) = -sum_a p(a) log p(a) of a discrete variable, in nats.

    p(a) is the fraction of the N labels equal to a.

    Parameters
    ----------
    labels : array, shape (N,)
        The values (any dtype numpy can sort, e.g. int level indices or bin indices).

    Returns
    -------
    float
        H in nats: 0 for a single value, log L for L values equally often.
    """
    return _entropy_of_counts(_compact(_labels(labels, "labels"))[1])


def discrete_mutual_information(a, b):
    """The plug-in mutual information I(a; b) of two discrete variables, in nats.

    I(a; b) = sum_ab p(a, b) log[p(a, b) / (p(a) p(b))] with p the fractions of the N rows,
    i.e. the KL divergence from the product of the empirical margins to the empirical joint
    distribution. It is 0 when the joint is exactly the product of the margins (e.g. two
    factors of a full factorial grid) and H(a) when b = a.

    Parameters
    ----------
    a, b : array, shape (N,)
        The values of the two variables in the same N rows.

    Returns
    -------
    float
        I(a; b) in nats, between 0 and min(H(a), H(b)) up to rounding.
    """
    a, b = _labels(a, "a"), _labels(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"a and b have {a.size} and {b.size} values; expected the same number")
    (index_a, counts_a), (index_b, counts_b) = _compact(a), _compact(b)
    return _mutual_information_of_table(_table(index_a, counts_a.size, index_b, counts_b.size))


def discretize(codes, n_bins=20):
    """Bin each code dimension into `n_bins` equal-width bins over its range [min, max].

    Row n of dimension j goes to bin floor(n_bins (z_nj - min_j) / (max_j - min_j)), the
    maximum to the last bin n_bins - 1. A constant dimension goes to bin 0 entirely.

    Parameters
    ----------
    codes : array, shape (N, J)
        The codes.
    n_bins : int
        Bins per dimension, >= 2.

    Returns
    -------
    array of int64, shape (N, J)
        The bin of each value, in [0, n_bins).
    """
    codes = _check_codes(codes)
    n_bins = _count(n_bins, "n_bins", 2)
    low, high = codes.min(axis=0), codes.max(axis=0)
    span = np.where(high > low, high - low, 1.0)  # a constant dimension: (z - min) / 1 = 0
    bins = np.floor(n_bins * ((codes - low) / span)).astype(np.int64)
    return np.minimum(bins, n_bins - 1)


# --------------------------------------------------------------------------- the metrics


def mutual_information_gap(codes, factors, n_bins=20):
    """The mutual information gap (MIG) of Chen et al. (2018), with binned codes.

    For each factor v_k of more than one level,

        gap_k = [I(z_(1); v_k) - I(z_(2); v_k)] / H(v_k),

    z_(1) and z_(2) the dimensions of largest and second largest mutual information with
    v_k; MIG is the mean of gap_k over those factors. Each gap lies in [0, 1]: 1 when one
    dimension determines the factor and the others carry nothing about it.

    Estimation. Chen et al. (2018) estimate I(z_j; v_k) from the full posterior q(z|x); here, as in Locatello et al.
    (2019), I(z_j; v_k) is the plug-in estimate (`discrete_mutual_information`) between
    v_k and dimension j of the codes (e.g. the posterior means) binned into `n_bins`
    equal-width bins over its range (`discretize`; 20 by default, Locatello et al.'s
    choice), and H(v_k) the plug-in entropy of the factor's levels.

    Parameters
    ----------
    codes : array, shape (N, J)
        The codes, J >= 2 (the gap needs a second dimension), e.g. posterior means.
    factors : integer array, shape (N, K)
        The level of each factor in each row.
    n_bins : int
        Equal-width bins per code dimension, >= 2.

    Returns
    -------
    MIG
        score (float), gaps (K,) (NaN for a factor of one level), mutual_information
        (J, K) in nats and entropies (K,) in nats.

    Raises
    ------
    ValueError
        Bad codes, factors or n_bins; J = 1; or no factor with more than one level.

    Notes
    -----
    A factor of a single level has H(v_k) = 0 and I(z_j; v_k) = 0 for every j, so its gap
    is 0 / 0: it is left out of the mean (its gap is NaN).

    Bias. The estimate is not the mutual information of the continuous codes:

    * Binning loses information: I(bin(z_j); v) <= I(z_j; v) (data processing). Levels
      closer than a bin width share a bin, and a few outlying values stretch the range so
      that most values fall into a few bins: a dimension that determines v_k can then get
      a gap below 1. And I(bin(z_j); v) <= log n_bins: a factor of more levels than bins
      cannot reach a gap of 1, only log(n_bins) / H(v_k) (0.86 for 32 equally frequent
      positions and 20 bins); pass more bins for such factors, at the price of the next
      point.
    * Finite samples inflate the plug-in estimate: for independent z_j and v_k, 2 N I is
      about chi-squared with (b - 1)(L_k - 1) degrees of freedom (b occupied bins, L_k
      levels; the G-test), so I averages about (b - 1)(L_k - 1) / (2N) nats instead of 0.
      This lifts the terms of the dimensions that carry nothing about v_k, the second
      largest among them, and so lowers the gaps; more bins, more levels or fewer rows
      make it larger.

    What it does not see. MIG asks only that each factor have one dominant dimension: a
    dimension that carries two factors (z_0 = 10 v_0 + v_1, no other dimension knowing
    either) still gives both factors gaps near 1. The FactorVAE score does penalise it.

    On a full factorial grid the factors are exactly independent in the data, so a
    dimension that is a function of one factor carries exactly 0 information about the
    others: with the levels in distinct bins, such a code has MIG = 1 to rounding.
    """
    codes, factors = _check_codes_factors(codes, factors)
    J, K = codes.shape[1], factors.shape[1]
    if J < 2:
        raise ValueError("codes has 1 dimension; the MIG needs at least 2 (a second-best dimension)")
    bins = discretize(codes, n_bins)
    dims = [_compact(bins[:, j]) for j in range(J)]
    levels = [_compact(factors[:, k]) for k in range(K)]
    varies = np.array([counts.size > 1 for _, counts in levels])
    if not varies.any():
        raise ValueError("factors: every factor has a single level; the MIG needs one that varies")
    mi = np.array([[_mutual_information_of_table(_table(bj, nj.size, vk, nk.size))
                    for vk, nk in levels] for bj, nj in dims])  # (J, K)
    entropies = np.array([_entropy_of_counts(counts) for _, counts in levels])
    top_two = -np.sort(-mi, axis=0)[:2]  # (2, K): largest and second largest over j
    gaps = np.full(K, np.nan)
    gaps[varies] = (top_two[0, varies] - top_two[1, varies]) / entropies[varies]
    return MIG(float(np.mean(gaps[varies])), gaps, mi, entropies)


def _level_groups(factors):
    """For the varying factors: rows sorted by each factor's level and where each level's
    rows begin and how many there are, as flat arrays over all (factor, level) pairs.

    Returns (order (N, K'), first_level (K',), n_levels (K',), start (S,), size (S,)):
    the rows of level l of varying factor i are order[start[s] : start[s] + size[s], i]
    with s = first_level[i] + l.
    """
    order = np.argsort(factors, axis=0, kind="stable")
    starts, sizes = [], []
    for i in range(factors.shape[1]):
        _, start, size = np.unique(factors[order[:, i], i], return_index=True, return_counts=True)
        starts.append(start)
        sizes.append(size)
    n_levels = np.array([s.size for s in sizes])
    first_level = np.concatenate([[0], np.cumsum(n_levels)[:-1]])
    return order, first_level, n_levels, np.concatenate(starts), np.concatenate(sizes)


def _cast_votes(scaled, groups, n_votes, n_per_vote, rng):
    """(dimension, factor) of `n_votes` votes, each (n_votes,) int64, factor indexing the
    varying factors.

    A vote: a factor i uniformly, one of its levels uniformly, `n_per_vote` rows of that
    level drawn uniformly with replacement, and the dimension of least variance of their
    `scaled` codes (ties to the lowest index). Votes are gathered `block` at a time.
    """
    order, first_level, n_levels, start, size = groups
    dims = np.empty(n_votes, dtype=np.int64)
    chosen = rng.integers(0, n_levels.size, size=n_votes)  # the fixed factor of each vote
    block = max(1, VOTE_BLOCK // (n_per_vote * scaled.shape[1]))
    for lo in range(0, n_votes, block):
        k = chosen[lo:lo + block]
        s = first_level[k] + rng.integers(0, n_levels[k])  # (b,): the fixed level of each vote
        offset = rng.integers(0, size[s][:, None], size=(k.size, n_per_vote))
        rows = order[start[s][:, None] + offset, k[:, None]]  # (b, n_per_vote)
        dims[lo:lo + block] = np.argmin(scaled[rows].var(axis=1), axis=1)
    return dims, chosen


def factor_vae_score(codes, factors, n_per_vote=64, n_votes_train=10000, n_votes_test=5000,
                     prune=0.05, seed=0):
    """The disentanglement score of Kim & Mnih (2018), from the given rows.

    1. Scale each code dimension j by its standard deviation s_j over all N rows
       (population std), so the argmin below does not change when a dimension is
       rescaled; first prune the collapsed dimensions, those with s_j < prune * max_j s_j
       (a constant dimension always goes).
    2. A vote: pick a factor k uniformly among those of more than one level and one of its
       levels uniformly, draw `n_per_vote` rows of that level uniformly with replacement
       (on a full factorial grid, a sample of the other factors), and take d, the kept
       dimension of least variance of their scaled codes. The vote is (d, k).
    3. The majority-vote classifier maps each dimension d to the factor it voted for most
       in `n_votes_train` votes (ties, and dimensions with no vote, to the lowest factor
       index); the score is its accuracy on `n_votes_test` further votes.

    The score is 1 when each factor has a dimension that stops moving exactly when that
    factor is fixed. Chance is 1/K' (K' the factors of more than one level): the factor of
    a test vote is uniform, so a classifier that learns nothing is right 1/K' of the time.

    Parameters
    ----------
    codes : array, shape (N, J)
        The codes, e.g. posterior means.
    factors : integer array, shape (N, K)
        The level of each factor in each row.
    n_per_vote : int
        Rows per vote, >= 2 (Locatello et al., 2019, use 64).
    n_votes_train, n_votes_test : int
        Votes to build the classifier from and to score it on, >= 1 (Locatello et al.,
        2019, use 10,000 and 5,000).
    prune : float in [0, 1)
        Dimensions whose standard deviation over the data is below prune times the largest
        are collapsed (Kim & Mnih prune dimensions collapsed to the prior): their votes
        would be noise. The rule is relative, so it does not depend on the units of the
        codes; for a VAE's posterior means, whose active dimensions have s_j near 1, the
        default 0.05 is close to Locatello et al.'s absolute threshold of 0.05.
    seed : int or numpy.random.Generator
        Seeds the votes (`numpy.random.default_rng(seed)`): the same seed gives the same
        score.

    Returns
    -------
    FactorVAEScore
        score (test accuracy), train_accuracy, votes (J, K) (training votes of each
        dimension for each factor; zero rows for pruned dimensions) and active (J,) bool.

    Raises
    ------
    ValueError
        Bad codes, factors or settings; every dimension constant; or no factor with more
        than one level.
    """
    codes, factors = _check_codes_factors(codes, factors)
    n_per_vote, n_votes_train, n_votes_test, prune = _check_vote_settings(
        n_per_vote, n_votes_train, n_votes_test, prune)
    J, K = codes.shape[1], factors.shape[1]
    check_array((2, n_votes_train + n_votes_test), 8, "the votes")
    check_array((n_per_vote, J), 8, "one vote's codes")
    std = codes.std(axis=0)
    if not std.max() > 0:
        raise ValueError("codes: every dimension is constant; the FactorVAE score needs one that varies")
    active = (std > 0) & (std >= prune * std.max())
    varying = np.flatnonzero([np.unique(factors[:, k]).size > 1 for k in range(K)])
    if varying.size == 0:
        raise ValueError("factors: every factor has a single level; the FactorVAE score needs one that varies")
    kept = np.flatnonzero(active)
    scaled = codes[:, kept] / std[kept]  # (N, J'): unit standard deviation
    groups = _level_groups(factors[:, varying])
    rng = np.random.default_rng(seed)
    dims, chosen = _cast_votes(scaled, groups, n_votes_train + n_votes_test, n_per_vote, rng)
    dims, chosen = kept[dims], varying[chosen]  # back to the numbering of codes and factors
    votes = np.zeros((J, K), dtype=np.int64)
    np.add.at(votes, (dims[:n_votes_train], chosen[:n_votes_train]), 1)
    predict = votes.argmax(axis=1)  # (J,): the factor of each dimension
    right = predict[dims] == chosen
    return FactorVAEScore(float(right[n_votes_train:].mean()), float(right[:n_votes_train].mean()),
                          votes, active)


def disentanglement_metrics(model, x, factors, batch_size=1000, n_bins=20, n_per_vote=64,
                            n_votes_train=10000, n_votes_test=5000, prune=0.05, seed=0):
    """The MIG and the FactorVAE score of a model's posterior means on the examples x.

    Encodes x `batch_size` rows at a time with ``model.encode`` and scores the means mu
    with `mutual_information_gap` and `factor_vae_score` (see them for the definitions).

    Parameters
    ----------
    model : a model with ``encode(x) -> (mu, logvar)``, each (B, J), and ``check_input``
        (npvae.VAE, ConditionalVAE).
    x : array, shape (N, input_dim)
        The examples.
    factors : integer array, shape (N, K)
        The level of each factor in each row of x.
    batch_size : int
        Rows encoded at a time (memory only).
    n_bins : int
        Bins per dimension for the MIG.
    n_per_vote, n_votes_train, n_votes_test, prune, seed
        The FactorVAE score's settings.

    Returns
    -------
    Disentanglement
        mig (MIG) and factor_vae (FactorVAEScore).
    """
    x = model.check_input(x, check_support=False)
    factors = _check_factors(factors, x.shape[0], "x has")
    batch_size = positive_int(batch_size, "batch_size")
    _count(n_bins, "n_bins", 2)  # the settings are checked before the encoding
    _check_vote_settings(n_per_vote, n_votes_train, n_votes_test, prune)
    mu = np.concatenate([model.encode(x[s:s + batch_size])[0]
                         for s in range(0, x.shape[0], batch_size)]).astype(np.float64)
    return Disentanglement(mutual_information_gap(mu, factors, n_bins),
                           factor_vae_score(mu, factors, n_per_vote, n_votes_train,
                                            n_votes_test, prune, seed))
