"""EMO (``lib/entropylab/objectives/emo.py``): its formula against the NumPy reference and an optimal-transport solver,
hand cases, its gradient (none into the head kernel through the cost), and training with the *current* head kernel
on every path: Keras' one-run train step, the one-run validation pass and the fused engine (JAX), TensorFlow.

Why the gradient and a kernel-dependent toy objective are checked rather than EMO's reported loss: EMO's value is
``CE (1 + D / (D + 1e-10)) / 2``, cross-entropy to float32 rounding whatever the kernel, so a frozen (stale) kernel
would leave the reported loss unchanged and show only in the gradient. The toy objective ``toy_emd`` (the bare
earth mover distance, registered for these tests) has a value that moves with the kernel.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from entropylab import objectives
from entropylab.objectives import emo
from entropylab.objectives import numpy_reference as ref

FUSED_RTOL = 1e-5  # as tests/test_fused.py: the fused engine's float64 epoch mean against fit's float32 one
QUICK = {"dataset": "synthetic", "epochs": 2, "max_sequences": 600, "lstm_units": 16, "batch_size": 32,
         "synthetic": {"n_headlines": 300, "n_words": 60, "branching": 5, "seed": 3}}


def _batch(seed: int, batch: int = 16, width: int = 37, dim: int = 5, scale: float = 2.0):
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, scale, (batch, width)).astype(np.float32)
    t = rng.integers(0, width, batch).astype(np.int32)
    kernel = rng.normal(0.0, 1.0, (dim, width)).astype(np.float32)
    return t, z, kernel


def _per_example(t, z, kernel):
    return keras.ops.convert_to_numpy(objectives.keras_loss("emo", kernel=kernel).per_example(t, z))


def _emd(t, z, kernel):
    return keras.ops.convert_to_numpy(emo.earth_mover_distance(keras.ops, t, z, kernel))


def _analytic_logit_gradient(t, z, kernel):
    """``d L / d z = ((p - onehot(t)) + (CE / D) p (C_.t - EMD)) / 2`` in float64: the cross-entropy gradient plus
    the detached ratio times the EMD gradient (``d EMD / d z_k = p_k (C_kt - EMD)``), ``D = EMD + p_t``."""
    z = z.astype(np.float64)
    p = ref.softmax(z)
    unit = kernel.astype(np.float64) / np.linalg.norm(kernel.astype(np.float64), axis=0, keepdims=True)
    cost = (1.0 - unit.T @ unit)[:, t].T
    distance = np.sum(p * cost, axis=1)
    cross_entropy = ref.cross_entropy(t, z)
    scale = cross_entropy / (distance + ref.target_probability(t, z) + emo.RATIO_EPSILON)
    return 0.5 * (p - ref.onehot(t, z.shape[1]) + scale[:, None] * p * (cost - distance[:, None]))


# -- the formula -----------------------------------------------------------------------------------------------

def test_emo_is_registered_as_a_softmax_objective_without_parameter_that_reads_the_head_kernel():
    spec = objectives.get("emo")
    assert (spec.head, spec.parameter, spec.needs_kernel, spec.fusable) == ("softmax", None, True, False)
    assert objectives.describe("emo", 0.0) == "emo"
    with pytest.raises(ValueError, match="has no parameter"):
        objectives.keras_loss("emo", 0.5)
    t, z, _ = _batch(0)
    with pytest.raises(ValueError, match=r"kernel=entropylab.model.head_kernel\(model\)"):
        objectives.keras_loss("emo").per_example(t, z)


def test_an_objective_that_needs_the_kernel_names_no_family():
    spec = objectives.get("emo")
    with objectives.temporary(), pytest.raises(ValueError, match="needs the head kernel"):
        objectives.register(objectives.Objective(name="emo_family", head="softmax", per_example=spec.per_example,
                                                 reference=spec.reference, needs_kernel=True,
                                                 family="softmax_entropy", coefficients=lambda w: (0.0,)))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("scale", [0.3, 3.0])
def test_the_keras_formula_equals_the_numpy_reference(seed, scale):
    t, z, kernel = _batch(seed, scale=scale)
    expected = objectives.get("emo").reference(t, z.astype(np.float64), 0.0, kernel.astype(np.float64))
    np.testing.assert_allclose(_per_example(t, z, kernel), expected, rtol=1e-5, atol=1e-6)
    batch_mean = float(keras.ops.convert_to_numpy(objectives.keras_loss("emo", kernel=kernel)(t, z)))
    assert batch_mean == pytest.approx(expected.mean(), rel=1e-5)
    np.testing.assert_allclose(_emd(t, z, kernel), emo.earth_mover_distance_reference(t, z, kernel), atol=1e-6)


def test_the_value_is_cross_entropy_and_the_kernel_only_moves_the_gradient():
    t, z, kernel = _batch(5)
    other = np.random.default_rng(9).normal(size=kernel.shape).astype(np.float32)
    cross_entropy = ref.cross_entropy(t, z.astype(np.float64))
    np.testing.assert_allclose(_per_example(t, z, kernel), cross_entropy, rtol=2e-6)
    np.testing.assert_allclose(_per_example(t, z, other), cross_entropy, rtol=2e-6)
    gap = np.abs(_analytic_logit_gradient(t, z, kernel) - _analytic_logit_gradient(t, z, other)).max()
    assert gap > 1e-2


def test_the_emd_is_the_optimal_transport_cost():
    """With a one-hot target the cheapest plan moves all mass onto ``t``: a linear-program solver agrees."""
    linprog = pytest.importorskip("scipy.optimize").linprog
    t, z, kernel = _batch(2, batch=4, width=6, dim=3)
    unit = kernel.astype(np.float64) / np.linalg.norm(kernel.astype(np.float64), axis=0, keepdims=True)
    cost = 1.0 - unit.T @ unit
    width = z.shape[1]
    for row in range(len(t)):
        p, target = ref.softmax(z[row:row + 1].astype(np.float64))[0], ref.onehot(t[row:row + 1], width)[0]
        rows = np.kron(np.eye(width), np.ones(width))  # sum_j plan_ij = p_i
        cols = np.kron(np.ones(width), np.eye(width))  # sum_i plan_ij = target_j
        solved = linprog(cost.ravel(), A_eq=np.vstack([rows, cols]), b_eq=np.concatenate([p, target]),
                         bounds=(0, None), method="highs")
        assert solved.status == 0
        assert _emd(t[row:row + 1], z[row:row + 1], kernel)[0] == pytest.approx(solved.fun, abs=1e-6)


def test_hand_cases():
    width, dim = 6, 6
    t = np.array([2, 4], dtype=np.int32)
    # all the mass on the target: nothing to move, EMD 0; D = 0 + p_t = 1, and L = CE = 0
    z = np.full((2, width), -50.0, dtype=np.float32)
    z[np.arange(2), t] = 50.0
    kernel = np.random.default_rng(0).normal(size=(dim, width)).astype(np.float32)
    np.testing.assert_allclose(_emd(t, z, kernel), 0.0, atol=1e-6)
    np.testing.assert_allclose(_per_example(t, z, kernel), 0.0, atol=1e-6)
    # orthogonal embeddings (of any lengths): every other word costs 1, so EMD = 1 - p_t
    orthogonal = np.diag([0.5, 1.0, 2.0, 3.0, 0.1, 7.0]).astype(np.float32)
    _, z, _ = _batch(3, batch=2, width=width)
    p_t = ref.target_probability(t, z.astype(np.float64))
    np.testing.assert_allclose(_emd(t, z, orthogonal), 1.0 - p_t, rtol=1e-6)
    # one direction for every word: no cost anywhere
    parallel = np.outer(np.ones(dim), [1.0, 2.0, 3.0, 0.5, 4.0, 1.5]).astype(np.float32)
    np.testing.assert_allclose(_emd(t, z, parallel), 0.0, atol=1e-6)
    # opposite directions cost 2: all mass on the word whose embedding is -e_t
    antipodal = np.eye(dim, width, dtype=np.float32)
    antipodal[:, 3] = -antipodal[:, 2]
    z = np.full((1, width), -50.0, dtype=np.float32)
    z[0, 3] = 50.0
    np.testing.assert_allclose(_emd(np.array([2], np.int32), z, antipodal), 2.0, rtol=1e-6)


def test_the_cost_ignores_the_embeddings_lengths():
    t, z, kernel = _batch(4)
    lengths = np.random.default_rng(1).uniform(0.1, 10.0, kernel.shape[1]).astype(np.float32)
    np.testing.assert_allclose(_emd(t, z, kernel * lengths), _emd(t, z, kernel), rtol=1e-5, atol=1e-6)


def test_the_tensorflow_gradient_is_the_analytic_one_and_none_reaches_the_kernel():
    import tensorflow as tf

    t, z, kernel = _batch(6)
    logits, head = tf.constant(z), tf.constant(kernel)
    with tf.GradientTape() as tape:
        tape.watch([logits, head])
        value = tf.reduce_sum(objectives.keras_loss("emo", kernel=head).per_example(t, logits))
    grad_z, grad_kernel = tape.gradient(value, [logits, head])
    np.testing.assert_allclose(grad_z.numpy(), _analytic_logit_gradient(t, z, kernel), rtol=1e-4, atol=1e-6)
    assert grad_kernel is None or not np.any(grad_kernel.numpy())


# -- training with the current kernel ----------------------------------------------------------------------------

JAX_SCRIPT = textwrap.dedent("""
    import json, sys
    import jax, jax.numpy as jnp, keras
    import numpy as np
    from entropylab import objectives
    from entropylab.metrics import ValidationEvaluator
    from entropylab.model import build_model, head_kernel
    from entropylab.objectives import emo
    from entropylab.training import RunConfig, run
    from entropylab.training.fused import train_group
    from entropylab.training.train import run_split

    quick = json.loads(sys.argv[1])
    objectives.register(objectives.Objective(  # the bare EMD: a value that moves with the kernel
        name="toy_emd", head="softmax", needs_kernel=True,
        per_example=lambda ops, t, z, w, k: emo.earth_mover_distance(ops, t, z, k),
        reference=lambda t, z, w, k: emo.earth_mover_distance_reference(t, z, k)))
    out = {}

    # 1. jax.grad of EMO: the analytic gradient in the logits, exactly zero in the kernel
    rng = np.random.default_rng(6)
    z, t, kernel = rng.normal(0, 2, (16, 37)), rng.integers(0, 37, 16), rng.normal(0, 1, (5, 37))
    def total(z_, k_):
        return jnp.sum(objectives.keras_loss("emo", kernel=k_).per_example(jnp.asarray(t, jnp.int32), z_))
    grad_z, grad_k = jax.grad(total, argnums=(0, 1))(jnp.asarray(z, jnp.float32), jnp.asarray(kernel, jnp.float32))
    out["grad_z"], out["grad_kernel_max"] = np.asarray(grad_z).tolist(), float(jnp.max(jnp.abs(grad_k)))
    out["grad_inputs"] = [z.tolist(), t.tolist(), kernel.tolist()]

    # 2. Keras' jitted one-run train step (SGD) reads the current kernel: two steps, the second after it moved
    def mean_reference(name, model, weights, x, y, kernel=None):
        trainable = [jnp.asarray(w) for w in weights]
        logits, _ = model.stateless_call(trainable, [v.value for v in model.non_trainable_variables], x)
        k = np.asarray(trainable[kernel_at] if kernel is None else kernel, np.float64)
        return float(np.mean(objectives.get(name).reference(y, np.asarray(logits, np.float64), 0.0, k)))

    keras.utils.set_random_seed(0)
    x = rng.integers(1, 30, (64, 4)).astype("int32")
    y = rng.integers(1, 30, 64).astype("int32")
    steps = {}
    for name in ("toy_emd", "emo"):
        keras.utils.set_random_seed(0)
        model = build_model(30, 4, lstm_units=8, dropout=0.0, head="softmax")
        kernel_at = [id(v) for v in model.trainable_variables].index(id(head_kernel(model)))
        model.compile(optimizer=keras.optimizers.SGD(1.0), loss=objectives.keras_loss(name, kernel=head_kernel(model)),
                      jit_compile=True)
        w0 = [np.array(v.value) for v in model.trainable_variables]
        first = float(model.train_on_batch(x[:32], y[:32]))  # traced here, with the first kernel
        permuted = np.ascontiguousarray(np.array(head_kernel(model).value)[:, ::-1])
        head_kernel(model).assign(permuted)  # another kernel (its words permuted) before the second step
        w1 = [np.array(v.value) for v in model.trainable_variables]
        second = float(model.train_on_batch(x[32:], y[32:]))
        w2 = [np.array(v.value) for v in model.trainable_variables]
        def step(kernel_source):  # -lr * grad at w1, with the cost's kernel from kernel_source
            def loss_of(trainable):
                logits, _ = model.stateless_call(trainable, [v.value for v in model.non_trainable_variables], x[32:])
                k = trainable[kernel_at] if kernel_source is None else jnp.asarray(kernel_source)
                return jnp.mean(objectives.keras_loss(name, kernel=k).per_example(jnp.asarray(y[32:]), logits))
            return [-np.asarray(g) for g in jax.grad(loss_of)([jnp.asarray(w) for w in w1])]
        current, stale = step(None), step(w0[kernel_at])
        steps[name] = {
            "reported": [first, second],
            "reference": [mean_reference(name, model, w0, x[:32], y[:32]),
                          mean_reference(name, model, w1, x[32:], y[32:])],
            "stale_reference": mean_reference(name, model, w1, x[32:], y[32:], kernel=w0[kernel_at]),
            "update_vs_current": max(float(np.max(np.abs((b - a) - c))) for a, b, c in zip(w1, w2, current)),
            "stale_vs_current": max(float(np.max(np.abs(s - c))) for s, c in zip(stale, current)),
            "kernel_moved": float(np.max(np.abs(w1[kernel_at] - w0[kernel_at]))),
        }
    out["steps"] = steps

    # 3. the one-run validation pass: each epoch's val_loss at that epoch's kernel (a plain evaluator freezes it)
    result = run(RunConfig(**{**quick, "epochs": 3}, loss="toy_emd", seed=0))
    data = run_split(result.corpus, result.config)
    model = result.model
    kernel_at = [id(v) for v in model.trainable_variables].index(id(head_kernel(model)))
    def val_reference():
        return mean_reference("toy_emd", model, [np.array(v.value) for v in model.trainable_variables],
                              data.x_val, data.y_val)
    out["val_loss"] = [float(result.history["val_loss"].iloc[-1]), val_reference()]
    plain = ValidationEvaluator(data.x_val, data.y_val, objectives.keras_loss("toy_emd", kernel=head_kernel(model)),
                                "softmax")
    plain.evaluate(model)
    head_kernel(model).assign(np.ascontiguousarray(np.array(head_kernel(model).value)[:, ::-1]))  # words permuted
    out["plain_after_change"] = [plain.evaluate(model)["val_loss"], val_reference()]

    # 4. EMO on the fused engine (two seeds, one program) and alone
    group = [RunConfig(**quick, loss="emo", seed=s) for s in (0, 1)]
    fused = train_group(group)
    alone = [run(c) for c in group]
    out["fused"] = [{"fused": f.history.drop(columns="seconds").to_dict("list"),
                     "alone": a.history.drop(columns="seconds").to_dict("list"),
                     "weights": max(float(np.max(np.abs(u - v))) for u, v in zip(f.model.get_weights(),
                                                                                 a.model.get_weights())),
                     "status": [f.status, a.status], "engine": f.metrics.get("engine"),
                     "group_size": f.metrics.get("group_size")} for f, a in zip(fused, alone)]
    print("RESULT=" + json.dumps(out))
""")


@pytest.fixture(scope="module")
def on_jax():
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "ENTROPYLAB_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", JAX_SCRIPT, json.dumps(QUICK)], capture_output=True, text=True,
                          timeout=900, check=False, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(next(x for x in proc.stdout.splitlines() if x.startswith("RESULT="))[len("RESULT="):])


def test_the_jax_gradient_is_the_analytic_one_and_none_reaches_the_kernel(on_jax):
    z, t, kernel = (np.asarray(a) for a in on_jax["grad_inputs"])
    np.testing.assert_allclose(on_jax["grad_z"], _analytic_logit_gradient(t, z.astype(np.float32), kernel),
                               rtol=1e-4, atol=1e-6)
    assert on_jax["grad_kernel_max"] == 0.0


@pytest.mark.parametrize("name", ["toy_emd", "emo"])
def test_the_keras_train_step_on_jax_reads_the_current_kernel(on_jax, name):
    step = on_jax["steps"][name]
    assert step["kernel_moved"] > 1e-2  # the kernel changed between the steps: a stale one would differ
    np.testing.assert_allclose(step["reported"], step["reference"], rtol=1e-5)  # each at the weights before it
    # the second step's update is -lr * gradient at the current kernel, far from the one at the first kernel
    assert step["update_vs_current"] <= 1e-5
    assert step["stale_vs_current"] > 1e3 * max(step["update_vs_current"], 1e-7)
    if name == "toy_emd":  # its value moves with the kernel; EMO's is cross-entropy's (module docstring)
        assert abs(step["stale_reference"] - step["reference"][1]) > 100 * 1e-5 * step["reference"][1]


def test_each_epochs_val_loss_uses_that_epochs_kernel_on_jax(on_jax):
    reported, reference = on_jax["val_loss"]
    assert reported == pytest.approx(reference, rel=1e-5)
    # why the one-run path makes a new evaluator each epoch: a plain one keeps the kernel it was compiled with
    stale, current = on_jax["plain_after_change"]
    assert abs(stale - current) > 1e-3


def test_emo_trains_fused_as_it_trains_alone(on_jax):
    for pair in on_jax["fused"]:
        assert pair["status"] == ["complete", "complete"]
        assert pair["engine"] == "fused" and pair["group_size"] == 2
        assert pair["fused"].keys() == pair["alone"].keys()
        for column in pair["fused"]:
            np.testing.assert_allclose(pair["fused"][column], pair["alone"][column], rtol=FUSED_RTOL, atol=1e-7,
                                       err_msg=column)
        assert pair["weights"] <= 1e-5
        assert all(math.isfinite(v) for v in pair["fused"]["val_loss"])
    first, second = (pair["alone"]["val_cross_entropy"][-1] for pair in on_jax["fused"])
    assert abs(first - second) > 100 * FUSED_RTOL * first  # the seeds differ by far more than the tolerance


def test_a_tensorflow_train_step_reads_the_current_kernel():
    from entropylab.model import build_model, head_kernel

    with objectives.temporary():
        objectives.register(objectives.Objective(
            name="toy_emd", head="softmax", needs_kernel=True,
            per_example=lambda ops, t, z, w, k: emo.earth_mover_distance(ops, t, z, k),
            reference=lambda t, z, w, k: emo.earth_mover_distance_reference(t, z, k)))
        keras.utils.set_random_seed(0)
        rng = np.random.default_rng(0)
        x, y = rng.integers(1, 30, (64, 4)).astype("int32"), rng.integers(1, 30, 64).astype("int32")
        model = build_model(30, 4, lstm_units=8, dropout=0.0, head="softmax")
        kernel = head_kernel(model)
        model.compile(optimizer=keras.optimizers.SGD(1.0), loss=objectives.keras_loss("toy_emd", kernel=kernel))
        start = keras.ops.convert_to_numpy(kernel)
        model.train_on_batch(x[:32], y[:32])  # traced here, with the first kernel
        kernel.assign(np.ascontiguousarray(keras.ops.convert_to_numpy(kernel)[:, ::-1]))  # its words permuted
        logits = model.predict(x[32:], verbose=0).astype(np.float64)
        current = keras.ops.convert_to_numpy(kernel).astype(np.float64)
        expected = emo.earth_mover_distance_reference(y[32:], logits, current).mean()
        stale = emo.earth_mover_distance_reference(y[32:], logits, start.astype(np.float64)).mean()
        reported = float(model.train_on_batch(x[32:], y[32:]))
    assert reported == pytest.approx(expected, rel=1e-5)
    assert abs(stale - expected) > 1e-2 * expected


def test_a_one_run_emo_training_completes_with_finite_metrics():
    from entropylab.training import RunConfig, run

    result = run(RunConfig(**QUICK, jit_compile=False, loss="emo", seed=0))
    assert result.status == "complete" and len(result.history) == QUICK["epochs"]
    bands = [c for c in result.history.columns if c.startswith("val_ce_")]  # NaN where a band has no labels
    assert np.all(np.isfinite(result.history.drop(columns=["seconds", *bands]).to_numpy(dtype=float)))
    # EMO's value is cross-entropy (module docstring): the validation loss is the validation cross-entropy
    np.testing.assert_allclose(result.history["val_loss"], result.history["val_cross_entropy"], rtol=1e-5)
    assert result.history["val_cross_entropy"].iloc[-1] < result.history["val_cross_entropy"].iloc[0]
