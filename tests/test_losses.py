"""Each objective against a plain NumPy reference written from its formula (see the losses module)."""

import math

import keras
import numpy as np
import pytest

from entropylab import losses

EPS = 1e-7


def onehot(labels, width):
    out = np.zeros((len(labels), width))
    out[np.arange(len(labels)), labels] = 1.0
    return out


def ref_mse(t, o):
    return np.mean((onehot(t, o.shape[1]) - o) ** 2, axis=1)


def ref_entropy(o):
    c = np.clip(o, EPS, 1)
    return -np.sum(c * np.log(c), axis=1)


def ref_kl(t, o):
    d = np.clip(onehot(t, o.shape[1]), EPS, 1)
    c = np.clip(o, EPS, 1)
    return np.sum(d * np.log(d / c), axis=1)


def ref_ce(t, z):
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return -logp[np.arange(len(t)), t]


def ref_softmax_entropy(z):
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    return -np.sum(p * np.log(p), axis=1)


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    width = 37
    o = rng.normal(0.3, 0.6, size=(16, width))
    o[0, :5] = [0.0, -0.5, 1.0, 1.7, EPS / 10]  # at 0, negative, at 1, above 1, below eps
    o[1, :] = 0.0  # a row that is all zeros
    t = rng.integers(1, width, size=16)
    t[0] = 1  # the label sits on a negative output
    return t.astype(np.int32), o.astype(np.float32)


def ref_logp(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def ref_pt(t, z):
    return np.exp(ref_logp(z)[np.arange(len(t)), t])


REFERENCES = {
    "mse": lambda t, o, w: ref_mse(t, o),
    "entropy_regularized": lambda t, o, w: ref_mse(t, o) + w * ref_entropy(o),
    "kl_regularized": lambda t, o, w: ref_mse(t, o) + w * ref_kl(t, o),
    "cross_entropy": lambda t, z, w: ref_ce(t, z),
    "confidence_penalty": lambda t, z, w: ref_ce(t, z) - w * ref_softmax_entropy(z),
    "entropy_minimization": lambda t, z, w: ref_ce(t, z) + w * ref_softmax_entropy(z),
    "label_smoothing": lambda t, z, w: -np.sum(
        ((1 - w) * onehot(t, z.shape[1]) + w / z.shape[1]) * ref_logp(z), axis=1),
    "alpha_divergence": lambda t, z, w: (1 - ref_pt(t, z) ** (1 - w)) / (w * (1 - w)),
    "beta_divergence": lambda t, z, w: -(ref_pt(t, z) ** (w - 1) / (w - 1)
                                         - np.sum(np.exp(ref_logp(z)) ** w, axis=1) / w - 1 / (w * (w - 1))),
    "gamma_divergence": lambda t, z, w: ref_ce(t, z) + np.log(np.sum(np.exp(ref_logp(z)) ** w, axis=1)) / w,
    "generalized_cross_entropy": lambda t, z, w: (1 - ref_pt(t, z) ** w) / w,
}
EXPONENT_LOSSES = ("alpha_divergence", "beta_divergence", "gamma_divergence", "generalized_cross_entropy")


@pytest.mark.parametrize("name", list(REFERENCES))
@pytest.mark.parametrize("weight", [0.0, 1e-7, 0.5, 10.0])
def test_loss_matches_numpy_reference(name, weight, batch):
    t, o = batch
    cls = losses.loss_class(name)
    if name in EXPONENT_LOSSES and weight in (0.0, 1e-7):
        pytest.skip("exponents must be > 0 (tested below) and 1e-7 is numerically the CE limit")
    if name == "label_smoothing" and weight >= 1:
        pytest.skip("smoothing must be < 1 (tested below)")
    if name == "generalized_cross_entropy" and weight > 1:
        pytest.skip("q must be <= 1 (tested below)")
    loss = losses.get(name, weight=weight if cls.takes_weight else None)
    used_weight = weight if cls.takes_weight else 0.0
    expected = REFERENCES[name](t, o.astype(np.float64), used_weight)
    per_example = keras.ops.convert_to_numpy(loss.per_example(t, o))
    np.testing.assert_allclose(per_example, expected, rtol=2e-5, atol=2e-6)
    batch_mean = float(keras.ops.convert_to_numpy(loss(t, o)))
    assert batch_mean == pytest.approx(expected.mean(), rel=2e-5, abs=2e-6)
    # labels may also come as a column (B, 1), as Keras sometimes passes them
    assert float(keras.ops.convert_to_numpy(loss(t[:, None], o))) == pytest.approx(batch_mean, rel=1e-6)


def _kl_edge_cases():
    """Rows (width 6) at the clip edges of ``KL_paper``, each with its label."""
    rows = [
        ([0.0, 0.0, 1.0, 0.0, 0.0, 0.0], 2),  # an exact one-hot output: KL is 0
        ([0.2, 0.0, 0.3, 0.1, 0.2, 0.2], 1),  # the target output at 0 (clipped to eps)
        ([0.2, -0.5, 0.3, 0.1, 0.2, 0.2], 1),  # the target output negative
        ([0.2, 1.7, 0.3, 0.1, 0.2, 0.2], 1),  # the target output above 1 (clipped to 1)
        ([0.2, 1e-8, 0.3, 0.1, 0.2, 0.2], 1),  # the target output below eps
        ([1.0] * 6, 0),  # every output at 1, label first
        ([0.0] * 6, 5),  # every output at 0, label last
        ([-1.0, 2.0, -3.0, 0.5, 1e-9, 1.0], 5),  # a mix, label on an output of exactly 1
    ]
    outputs = np.array([r for r, _ in rows], dtype=np.float32)
    return np.array([t for _, t in rows], dtype=np.int32), outputs


@pytest.mark.parametrize("case", ["batch", "edges"])
def test_paper_kl_matches_the_one_hot_reference(case, batch):
    """The library's one-hot-free ``paper_kl`` (and the KL loss built on it) against ``sum_j d_j log(d_j / c_j)``."""
    t, o = batch if case == "batch" else _kl_edge_cases()
    expected = ref_kl(t, o.astype(np.float64))
    got = keras.ops.convert_to_numpy(losses.paper_kl(t, o))
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    loss = losses.get("kl_regularized", weight=10.0)
    expected_loss = ref_mse(t, o.astype(np.float64)) + 10.0 * expected
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loss.per_example(t, o)), expected_loss, rtol=1e-6, atol=1e-5)
    assert float(keras.ops.convert_to_numpy(loss(t, o))) == pytest.approx(expected_loss.mean(), rel=1e-6)


def _gradient_direction(name, weight, logits_or_outputs, label):
    import tensorflow as tf

    x = tf.constant(logits_or_outputs[None, :])
    loss = losses.get(name, weight=weight)
    with tf.GradientTape() as tape:
        tape.watch(x)
        value = loss(np.array([label]), x)
    return tape.gradient(value, x).numpy()[0]


def test_entropy_penalty_pushes_probabilities_toward_peaked():
    """A positive weight on H_paper penalises spread: descent lowers the entropy of mid-range outputs."""
    o = np.full(20, 0.2, dtype=np.float32)
    o[3] = 0.6
    grad_pen = _gradient_direction("entropy_regularized", 1.0, o, 3) - _gradient_direction(
        "entropy_regularized", 0.0, o, 3)
    step = o - 0.01 * grad_pen
    assert ref_entropy(step[None].astype(np.float64))[0] < ref_entropy(o[None].astype(np.float64))[0]


def test_kl_penalty_raises_the_target_output():
    o = np.full(20, 0.05, dtype=np.float32)
    grad = _gradient_direction("kl_regularized", 10.0, o, 4) - _gradient_direction("kl_regularized", 0.0, o, 4)
    assert grad[4] < 0  # descent increases o_t
    assert np.all(grad[np.arange(20) != 4] < 0)  # and (by eps) the others, toward clip(1)


def test_confidence_penalty_flattens_the_softmax():
    z = np.zeros(10, dtype=np.float32)
    z[2] = 4.0
    grad = _gradient_direction("confidence_penalty", 1.0, z, 2) - _gradient_direction(
        "confidence_penalty", 0.0, z, 2)
    step = z - 0.1 * grad
    assert ref_softmax_entropy(step[None].astype(np.float64))[0] > ref_softmax_entropy(z[None].astype(np.float64))[0]


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), "ten"])
def test_bad_weights_are_refused(bad):
    with pytest.raises(ValueError, match="weight"):
        losses.get("kl_regularized", weight=bad)


def test_unknown_name_lists_the_allowed_ones():
    with pytest.raises(ValueError, match="mse, entropy_regularized, kl_regularized, cross_entropy"):
        losses.get("hinge")


def test_weight_on_an_unweighted_loss_is_refused():
    with pytest.raises(ValueError, match="no penalty weight"):
        losses.get("mse", weight=3)
    with pytest.raises(ValueError, match="no parameter"):
        losses.get("mse", alpha=2)


@pytest.mark.parametrize("name", losses.names())
def test_losses_serialise_and_come_back(name):
    cls = losses.loss_class(name)
    loss = losses.get(name, weight=0.25 if cls.takes_weight else None)
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(restored) is cls
    assert restored.weight == loss.weight


NEAR_CE = [(name, delta) for name in ("alpha_divergence", "beta_divergence", "gamma_divergence")
           for delta in (1e-3, -1e-3, 1e-5, -1e-5)]
NEAR_CE += [("generalized_cross_entropy", delta) for delta in (1e-3, 1e-5)]  # its CE point is q -> 0


@pytest.mark.parametrize("name, delta", NEAR_CE)
def test_exponent_losses_near_the_ce_point_follow_their_formula_in_float32(name, delta, batch):
    """Off the exact CE point the formula itself is used; in float32 it must not cancel.

    Float32 ``per_example`` against the float64 NumPy reference of the unsimplified formula: relative error
    <= 2e-6 (about 30 float32 ulps; the expm1 forms measure ~2e-7, the rounding of ``log_softmax``, while
    ``1 - exp(x)`` with ``x ~ delta log p_t`` loses ``~6e-8 / |x|``: ~1e-5 at ``delta = 1e-3``, ~1e-3 at
    ``1e-5``). And within ``5 |delta|`` (relative) of cross-entropy: the first-order deviation is ``delta``
    times a constant of order ``log p_t`` (at most ~3 on this batch, where ``CE`` is in [3, 4.6]).
    """
    t, z = batch
    weight = losses.loss_class(name).ce_point + delta
    got = keras.ops.convert_to_numpy(losses.get(name, weight=weight).per_example(t, z))
    assert got.dtype == np.float32
    z64 = z.astype(np.float64)
    np.testing.assert_allclose(got, REFERENCES[name](t, z64, weight), rtol=2e-6, atol=0)
    np.testing.assert_allclose(got, ref_ce(t, z64), rtol=5 * abs(delta), atol=0)


@pytest.mark.parametrize("name", ["alpha_divergence", "beta_divergence", "gamma_divergence"])
def test_power_divergences_are_cross_entropy_at_exactly_one(name, batch):
    t, z = batch
    at_one = keras.ops.convert_to_numpy(losses.get(name, weight=1.0).per_example(t, z))
    np.testing.assert_allclose(at_one, ref_ce(t, z.astype(np.float64)), rtol=1e-6)


@pytest.mark.parametrize("name, weight", [("alpha_divergence", 3.0), ("beta_divergence", 3.0),
                                          ("beta_divergence", 0.5), ("alpha_divergence", 1.0 + 1e-5),
                                          ("gamma_divergence", 3.0), ("generalized_cross_entropy", 0.5)])
@pytest.mark.parametrize("gap", [60.0, 1000.0])
def test_exponent_losses_stay_finite_on_confident_wrong_logits(name, weight, gap):
    """``log p_t ~ -gap``: ``p_t^(1-a)`` for ``a = 3`` is ``exp(2 gap)``, inf in float32 unless clamped."""
    z = np.zeros(10, dtype=np.float32)
    z[7] = gap  # all the mass on token 7, the label is 2
    loss = losses.get(name, weight=weight)
    value = float(keras.ops.convert_to_numpy(loss(np.array([2]), z[None])))
    assert math.isfinite(value) and value > 0
    grad = _gradient_direction(name, weight, z, 2)
    assert np.all(np.isfinite(grad)), grad


def test_generalized_cross_entropy_limits(batch):
    t, z = batch
    small_q = keras.ops.convert_to_numpy(losses.get("generalized_cross_entropy", weight=1e-3).per_example(t, z))
    np.testing.assert_allclose(small_q, ref_ce(t, z.astype(np.float64)), rtol=2e-2)
    mae = keras.ops.convert_to_numpy(losses.get("generalized_cross_entropy", weight=1.0).per_example(t, z))
    np.testing.assert_allclose(mae, 1 - ref_pt(t, z.astype(np.float64)), rtol=1e-5)


@pytest.mark.parametrize("name, bad", [("alpha_divergence", 0.0), ("gamma_divergence", 0.0),
                                       ("beta_divergence", 0.0), ("label_smoothing", 1.0),
                                       ("generalized_cross_entropy", 0.0)])
def test_parameter_ranges(name, bad):
    with pytest.raises(ValueError, match=r"> 0|\[0, 1\)|\(0, 1\]"):
        losses.get(name, weight=bad)


@pytest.mark.parametrize("q", [1.5, 1.0 + 1e-9])
def test_generalized_cross_entropy_refuses_q_above_one(q):
    with pytest.raises(ValueError, match=r"generalized_cross_entropy needs an exponent in \(0, 1\], got"):
        losses.get("generalized_cross_entropy", weight=q)


def test_entropy_minimization_sharpens_the_softmax():
    z = np.zeros(10, dtype=np.float32)
    z[2] = 1.0
    grad = _gradient_direction("entropy_minimization", 1.0, z, 2) - _gradient_direction(
        "entropy_minimization", 0.0, z, 2)
    step = z - 0.1 * grad
    assert ref_softmax_entropy(step[None].astype(np.float64))[0] < ref_softmax_entropy(z[None].astype(np.float64))[0]
