"""Each registered objective's Keras loss against its registered NumPy reference (the plain textbook formula), and
the edge cases, gradient signs, serialisation and float32 safety of the losses."""

import math

import keras
import numpy as np
import pytest

from entropylab import objectives
from entropylab.objectives import numpy_reference as ref
from entropylab.objectives.keras_losses import ObjectiveLoss

EXPONENT_LOSSES = tuple(n for n in objectives.names() if objectives.get(n).parameter == "exponent")


def keras_loss(name, weight=None, **params):
    return objectives.keras_loss(name, weight, **params)


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    width = 37
    o = rng.normal(0.3, 0.6, size=(16, width))
    o[0, :5] = [0.0, -0.5, 1.0, 1.7, objectives.EPSILON / 10]  # at 0, negative, at 1, above 1, below eps
    o[1, :] = 0.0  # a row that is all zeros
    t = rng.integers(1, width, size=16)
    t[0] = 1  # the label sits on a negative output
    return t.astype(np.int32), o.astype(np.float32)


def test_every_registered_objective_has_a_numpy_reference():
    assert objectives.names()
    for name in objectives.names():
        assert callable(objectives.get(name).reference), f"{name} has no NumPy reference"


def test_the_registry_refuses_an_objective_without_a_numpy_reference():
    spec = objectives.get("cross_entropy")
    with objectives.temporary(), pytest.raises(ValueError, match="no NumPy reference"):
        objectives.register(objectives.Objective(name="no_reference", head="softmax",
                                                 per_example=spec.per_example, reference=None))
    assert "no_reference" not in objectives.names()


@pytest.mark.parametrize("name", objectives.names())
@pytest.mark.parametrize("weight", [0.0, 1e-7, 0.5, 10.0])
def test_loss_matches_its_numpy_reference(name, weight, batch):
    t, o = batch
    spec = objectives.get(name)
    used_weight = weight if spec.takes_parameter else 0.0
    if name in EXPONENT_LOSSES and weight == 1e-7:
        pytest.skip("1e-7 is numerically the CE limit (tested below)")
    try:
        spec.check(used_weight)
    except ValueError:
        with pytest.raises(ValueError, match=spec.parameter):
            keras_loss(name, used_weight)
        return
    # an objective that reads the head kernel gets a random one (d = 5), in both formulas
    kernel = np.random.default_rng(1).normal(size=(5, o.shape[1])).astype(np.float32) if spec.needs_kernel else None
    loss = objectives.keras_loss(name, used_weight, kernel=kernel)
    expected = spec.reference(t, o.astype(np.float64), used_weight, *([kernel.astype(np.float64)] if spec.needs_kernel
                                                                         else []))
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
    expected = ref.paper_kl(t, o.astype(np.float64))
    got = keras.ops.convert_to_numpy(objectives.paper_kl(keras.ops, t, o))
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    loss = keras_loss("kl_regularized", 10.0)
    expected_loss = objectives.get("kl_regularized").reference(t, o.astype(np.float64), 10.0)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loss.per_example(t, o)), expected_loss, rtol=1e-6, atol=1e-5)
    assert float(keras.ops.convert_to_numpy(loss(t, o))) == pytest.approx(expected_loss.mean(), rel=1e-6)


def _gradient_direction(name, weight, logits_or_outputs, label):
    import tensorflow as tf

    x = tf.constant(logits_or_outputs[None, :])
    loss = keras_loss(name, weight)
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
    assert ref.paper_entropy(step[None].astype(np.float64))[0] < ref.paper_entropy(o[None].astype(np.float64))[0]


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
    assert ref.entropy(step[None].astype(np.float64))[0] > ref.entropy(z[None].astype(np.float64))[0]


def test_entropy_minimization_sharpens_the_softmax():
    z = np.zeros(10, dtype=np.float32)
    z[2] = 1.0
    grad = _gradient_direction("entropy_minimization", 1.0, z, 2) - _gradient_direction(
        "entropy_minimization", 0.0, z, 2)
    step = z - 0.1 * grad
    assert ref.entropy(step[None].astype(np.float64))[0] < ref.entropy(z[None].astype(np.float64))[0]


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), "ten"])
def test_bad_weights_are_refused(bad):
    with pytest.raises(ValueError, match="weight"):
        keras_loss("kl_regularized", bad)


def test_unknown_name_lists_the_allowed_ones():
    with pytest.raises(ValueError, match="mse, entropy_regularized, kl_regularized, cross_entropy"):
        keras_loss("hinge")


def test_weight_on_an_unweighted_loss_is_refused():
    with pytest.raises(ValueError, match="'mse' has no parameter"):
        keras_loss("mse", 3)
    with pytest.raises(ValueError, match="takes no parameter"):
        keras_loss("mse", alpha=2)


def test_an_omitted_value_is_the_objectives_default():
    for name in objectives.names():
        assert keras_loss(name).weight == (objectives.get(name).default if objectives.get(name).takes_parameter
                                           else 0.0)


@pytest.mark.parametrize("name", objectives.names())
def test_losses_serialise_and_come_back(name):
    loss = keras_loss(name, 0.25 if objectives.get(name).takes_parameter else None)
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(restored) is ObjectiveLoss
    assert (restored.objective, restored.weight, restored.head) == (name, loss.weight, objectives.get(name).head)


CE_POINT = {"alpha_divergence": 1.0, "beta_divergence": 1.0, "gamma_divergence": 1.0, "generalized_cross_entropy": 0.0}
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
    weight = CE_POINT[name] + delta
    got = keras.ops.convert_to_numpy(keras_loss(name, weight).per_example(t, z))
    assert got.dtype == np.float32
    z64 = z.astype(np.float64)
    np.testing.assert_allclose(got, objectives.get(name).reference(t, z64, weight), rtol=2e-6, atol=0)
    np.testing.assert_allclose(got, ref.cross_entropy(t, z64), rtol=5 * abs(delta), atol=0)


@pytest.mark.parametrize("name", ["alpha_divergence", "beta_divergence", "gamma_divergence"])
def test_power_divergences_are_cross_entropy_at_exactly_one(name, batch):
    t, z = batch
    at_one = keras.ops.convert_to_numpy(keras_loss(name, 1.0).per_example(t, z))
    np.testing.assert_allclose(at_one, ref.cross_entropy(t, z.astype(np.float64)), rtol=1e-6)


@pytest.mark.parametrize("name, weight", [("alpha_divergence", 3.0), ("beta_divergence", 3.0),
                                          ("beta_divergence", 0.5), ("alpha_divergence", 1.0 + 1e-5),
                                          ("gamma_divergence", 3.0), ("generalized_cross_entropy", 0.5)])
@pytest.mark.parametrize("gap", [60.0, 1000.0])
def test_exponent_losses_stay_finite_on_confident_wrong_logits(name, weight, gap):
    """``log p_t ~ -gap``: ``p_t^(1-a)`` for ``a = 3`` is ``exp(2 gap)``, inf in float32 unless clamped."""
    z = np.zeros(10, dtype=np.float32)
    z[7] = gap  # all the mass on token 7, the label is 2
    loss = keras_loss(name, weight)
    value = float(keras.ops.convert_to_numpy(loss(np.array([2]), z[None])))
    assert math.isfinite(value) and value > 0
    grad = _gradient_direction(name, weight, z, 2)
    assert np.all(np.isfinite(grad)), grad


def test_generalized_cross_entropy_limits(batch):
    t, z = batch
    small_q = keras.ops.convert_to_numpy(keras_loss("generalized_cross_entropy", 1e-3).per_example(t, z))
    np.testing.assert_allclose(small_q, ref.cross_entropy(t, z.astype(np.float64)), rtol=2e-2)
    mae = keras.ops.convert_to_numpy(keras_loss("generalized_cross_entropy", 1.0).per_example(t, z))
    np.testing.assert_allclose(mae, 1 - ref.target_probability(t, z.astype(np.float64)), rtol=1e-5)


@pytest.mark.parametrize("name, bad", [("alpha_divergence", 0.0), ("gamma_divergence", 0.0),
                                       ("beta_divergence", 0.0), ("label_smoothing", 1.0),
                                       ("generalized_cross_entropy", 0.0)])
def test_parameter_ranges(name, bad):
    with pytest.raises(ValueError, match=r"\(0, inf\)|\[0, 1\)|\(0, 1\]"):
        keras_loss(name, bad)


@pytest.mark.parametrize("q", [1.5, 1.0 + 1e-9])
def test_generalized_cross_entropy_refuses_q_above_one(q):
    with pytest.raises(ValueError, match=r"generalized_cross_entropy: exponent must be in \(0, 1\], got"):
        keras_loss("generalized_cross_entropy", q)
