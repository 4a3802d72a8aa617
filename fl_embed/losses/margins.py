"""Structured margins Delta(y, y*) = 1 - score(y, y*) between two clusterings (paper eqs. 8-10).

Every score here is a function of a few sums over the contingency table n[a, c] (a: predicted
cluster, c: true class) of an elementwise function `f`:

    s_ac = sum_{a,c} f(n_ac),   s_a = sum_a f(n_a),   s_c = sum_c f(n_c)

(`f(x) = x log x` for NMI, V-measure and AMI; `f(x) = x (x - 1) / 2` for ARI; `f(x) = [x > 0]` for
the 0/1 margin), plus, for AMI only, `s_e = sum_a E(n_a)` with `E` the expected-mutual-information
table of the true classes. Written this way the loss-augmented inference can score every candidate
facility at once by updating the sums for the points a candidate takes over (see
`candidates.py`) instead of rebuilding the table per candidate.
"""

import tensorflow as tf

MARGIN_TYPES = ("nmi", "ami", "ari", "vmeasure", "const")

# Entropies below this are zero: a single cluster computed in float32 can come out a hair below
# zero, and sqrt of a negative product would turn the margin into NaN.
_ENTROPY_EPS = 1e-6


def check_margin_type(margin_type: str) -> str:
    """Returns `margin_type` or raises a ValueError naming the valid choices."""
    if margin_type not in MARGIN_TYPES:
        raise ValueError(
            f"Unknown margin_type {margin_type!r}; expected one of {', '.join(MARGIN_TYPES)}."
        )
    return margin_type


def stat_fn(margin_type: str):
    """The elementwise `f` whose sums over the contingency table define the score."""
    check_margin_type(margin_type)
    if margin_type == "ari":
        return lambda x: 0.5 * x * (x - 1.0)
    if margin_type == "const":
        return lambda x: tf.cast(x > 0.5, x.dtype)
    return lambda x: tf.math.xlogy(x, x)


def singletons_add_nothing(margin_type: str) -> bool:
    """Whether f(0) = f(1) = 0, so that a row of the table holding one point adds nothing to
    s_ac, s_a or s_c whether or not that point moves (true for all but "const")."""
    return check_margin_type(margin_type) != "const"


def expected_mi_table(class_counts: tf.Tensor, m: tf.Tensor) -> tf.Tensor:
    """E[s] = sum_c EMI term of a cluster of size s against class c, for s = 0..m.

    The expected mutual information of the AMI (Vinh, Epps, Bailey 2010) is a sum over (cluster,
    class) pairs of a term that depends only on the two sizes and m; summing over the classes,
    which stay fixed during the inference, leaves a table indexed by cluster size. Scaled by m, so
    that EMI = s_e / m. One class at a time, so memory stays O(m^2).

    Args:
      class_counts: float Tensor [C], sizes of the true classes (zeros are ignored).
      m: float scalar, number of points (a whole number).

    Returns:
      float32 Tensor [m + 1].
    """
    n = tf.cast(m, tf.float64)
    size = tf.cast(tf.math.round(n), tf.int32)
    a = tf.cast(tf.range(size + 1), tf.float64)[:, None]  # cluster size
    nij = tf.cast(tf.range(1, size + 1), tf.float64)[None, :]
    lg = tf.math.lgamma
    counts = tf.cast(class_counts, tf.float64)

    one = tf.constant(1.0, tf.float64)

    def add_class(c, table):
        b = counts[c]
        valid = (
            (nij >= tf.maximum(one, a + b - n)) & (nij <= tf.minimum(a, b)) & (b > 0)
        )
        safe_nij = tf.where(valid, nij, one)
        safe_a = tf.where(valid, a, one)
        safe_b = tf.where(valid, b, one)
        log_p = (
            lg(safe_a + one)
            + lg(safe_b + one)
            + lg(n - safe_a + one)
            + lg(n - safe_b + one)
            - lg(n + one)
            - lg(safe_nij + one)
            - lg(safe_a - safe_nij + one)
            - lg(safe_b - safe_nij + one)
            - lg(tf.maximum(n - safe_a - safe_b + safe_nij, 0.0) + one)
        )
        term = safe_nij * tf.math.log(n * safe_nij / (safe_a * safe_b)) * tf.exp(log_p)
        return c + 1, table + tf.reduce_sum(
            tf.where(valid, term, tf.zeros_like(term)), axis=1
        )

    _, table = tf.while_loop(
        lambda c, _: c < tf.shape(counts)[0],
        add_class,
        (tf.constant(0), tf.zeros([size + 1], tf.float64)),
    )
    return tf.cast(table, tf.float32)


def score_from_sums(margin_type: str, s_ac, s_a, s_c, m, s_e=None):
    """The clustering agreement score from the contingency sums (1 = identical up to permutation).

    Formula (with f(x) = x log x, sums as in the module docstring):
        H(y)  = log m - s_a / m,   H(y*) = log m - s_c / m
        MI    = (s_ac - s_a - s_c) / m + log m
        NMI   = MI / sqrt(H(y) H(y*))                       (eq. 9)
        VM    = 2 h c / (h + c), h = 1 - (s_a - s_ac) / (m H(y*)), c = 1 - (s_c - s_ac) / (m H(y))
        AMI   = (MI - EMI) / ((H(y) + H(y*)) / 2 - EMI),    EMI = s_e / m
    With f(x) = x (x - 1) / 2, ARI = (s_ac - s_a s_c / C(m,2)) / ((s_a + s_c) / 2 - s_a s_c / C(m,2)).
    With f(x) = [x > 0], the 0/1 score is 1 iff s_ac = s_a = s_c (a one-to-one table).
    A clustering with zero entropy scores 1 against another with zero entropy and 0 otherwise.

    Args:
      margin_type: one of MARGIN_TYPES.
      s_ac, s_a, s_c: float Tensors of one shape (any batch of candidates).
      m: float scalar, number of points.
      s_e: for "ami", sum over clusters of `expected_mi_table` (same shape as s_a).

    Returns:
      float32 Tensor of the shape of s_ac.
    """
    m = tf.cast(m, tf.float32)
    if margin_type == "const":
        same = (tf.abs(s_ac - s_a) < 0.5) & (tf.abs(s_ac - s_c) < 0.5)
        return tf.cast(same, tf.float32)
    if margin_type == "ari":
        total = 0.5 * m * (m - 1.0)
        expected = s_a * s_c / tf.maximum(total, 1.0)
        maximum = 0.5 * (s_a + s_c)
        denom = maximum - expected
        # Both partitions trivial in the same way (all singletons, or one cluster each): identical.
        degenerate = tf.abs(denom) < 1e-6
        return tf.where(
            degenerate, 1.0, (s_ac - expected) / tf.where(degenerate, 1.0, denom)
        )
    log_m = tf.math.log(m)
    h_pred = tf.maximum(log_m - s_a / m, 0.0)
    h_true = tf.maximum(log_m - s_c / m, 0.0)
    mi = tf.maximum((s_ac - s_a - s_c) / m + log_m, 0.0)
    pred_flat = h_pred < _ENTROPY_EPS
    true_flat = h_true < _ENTROPY_EPS
    both_flat = pred_flat & true_flat
    one_flat = pred_flat | true_flat
    if margin_type == "nmi":
        denom = tf.sqrt(tf.where(one_flat, 1.0, h_pred * h_true))
        score = tf.minimum(mi / denom, 1.0)
    elif margin_type == "vmeasure":
        h = 1.0 - tf.maximum(s_a - s_ac, 0.0) / m / tf.where(true_flat, 1.0, h_true)
        c = 1.0 - tf.maximum(s_c - s_ac, 0.0) / m / tf.where(pred_flat, 1.0, h_pred)
        h = tf.where(true_flat, 1.0, h)
        c = tf.where(pred_flat, 1.0, c)
        score = tf.where(h + c > 0.0, 2.0 * h * c / tf.maximum(h + c, 1e-12), 0.0)
        return score
    else:  # ami
        emi = s_e / m
        denom = 0.5 * (h_pred + h_true) - emi
        denom = tf.where(denom < 0.0, tf.minimum(denom, -1e-7), tf.maximum(denom, 1e-7))
        score = (mi - emi) / denom
        # Both partitions all singletons: MI = EMI, a perfect match (scikit-learn's convention).
        both_flat = both_flat | ((s_a < 1e-6) & (s_c < 1e-6))
    return tf.where(both_flat, 1.0, tf.where(one_flat, 0.0, score))


def contingency_sums(labels_pred: tf.Tensor, labels_true: tf.Tensor, margin_type: str):
    """The sums (s_ac, s_a, s_c, s_e) for one pair of clusterings.

    Args:
      labels_pred: int Tensor [m], predicted cluster ids in [0, m).
      labels_true: int Tensor [m], true class ids in [0, m).
      margin_type: one of MARGIN_TYPES.

    Returns:
      Tuple of float32 scalars (s_ac, s_a, s_c, s_e); s_e is 0 unless margin_type is "ami".
    """
    m = tf.shape(labels_true)[0]
    f = stat_fn(margin_type)
    # Ids are in [0, m): a table of m x m cells holds any clustering of m points. One scatter of
    # the m points into it (O(m^2) memory, O(m) work beside the fill; a one-hot matmul was O(m^3)).
    table = tf.math.unsorted_segment_sum(
        tf.ones([m]), labels_pred * m + labels_true, m * m
    )
    n_a = tf.math.unsorted_segment_sum(tf.ones([m]), labels_pred, m)
    n_c = tf.math.unsorted_segment_sum(tf.ones([m]), labels_true, m)
    s_e = tf.constant(0.0)
    if margin_type == "ami":
        s_e = tf.reduce_sum(
            tf.gather(
                expected_mi_table(n_c, tf.cast(m, tf.float32)), tf.cast(n_a, tf.int32)
            )
        )
    return tf.reduce_sum(f(table)), tf.reduce_sum(f(n_a)), tf.reduce_sum(f(n_c)), s_e


def clustering_score(
    labels_true: tf.Tensor, labels_pred: tf.Tensor, margin_type: str = "nmi"
) -> tf.Tensor:
    """Agreement between two clusterings of the same m points, 1 when identical up to permutation.

    `nmi` is eq. 9 (geometric mean of the entropies), `ami` uses the arithmetic mean, as
    scikit-learn does by default; `ari`, `vmeasure` as in scikit-learn; `const` is 1 iff the two
    partitions are equal up to a relabelling.

    Args:
      labels_true: int Tensor [m], any integer ids.
      labels_pred: int Tensor [m], any integer ids.
      margin_type: one of MARGIN_TYPES.

    Returns:
      float32 scalar.
    """
    check_margin_type(margin_type)
    return score_of_ids(
        dense_labels(labels_pred), dense_labels(labels_true), margin_type
    )


def score_of_ids(labels_pred: tf.Tensor, labels_true: tf.Tensor, margin_type: str):
    """`clustering_score` of two clusterings whose ids are already in [0, m), e.g. slots of g(S)
    and `dense_labels`: float32 scalar."""
    m = tf.cast(tf.shape(labels_true)[0], tf.float32)
    s_ac, s_a, s_c, s_e = contingency_sums(labels_pred, labels_true, margin_type)
    return score_from_sums(margin_type, s_ac, s_a, s_c, m, s_e)


def structured_margin(
    labels_pred: tf.Tensor, labels_true: tf.Tensor, margin_type: str = "nmi"
) -> tf.Tensor:
    """Delta(y, y*) = 1 - score(y, y*), eq. 8: 0 for a perfect clustering, 1 for the worst.

    Arguments as `clustering_score`, predicted clusters first. Returns a float32 scalar.
    """
    return 1.0 - clustering_score(labels_true, labels_pred, margin_type)


def dense_labels(labels: tf.Tensor) -> tf.Tensor:
    """Each label replaced by the index of its class's first member: ids in [0, m), XLA-friendly.

    The one place the library makes labels dense: the inference's tables are indexed by these
    ids, and a point i is the first of its class exactly when dense_labels(labels)[i] == i.
    """
    labels = tf.reshape(labels, [-1])
    m = tf.shape(labels)[0]
    same = tf.equal(labels[:, None], labels[None, :])
    return tf.reduce_min(tf.where(same, tf.range(m)[None, :], m), axis=1)
