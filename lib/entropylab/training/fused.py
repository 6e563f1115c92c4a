"""A group of runs trained as one compiled program on the JAX backend (the ``fused`` engine of a sweep).

Runs that share every setting but their seed and, for objectives of one family in the registry (one formula with
per-run coefficients: the paper's three; cross-entropy and its entropy penalties; label smoothing), their objective
and its weight (:func:`group_key`) train together: one
``jax.jit`` of a ``jax.lax.scan`` over an epoch's steps, each step a ``jax.vmap`` over the runs of

    step_r(θ_r, s_r, m_r, c_r, batch_r) -> Adam(θ_r, ∇_θ L_{c_r}(f(θ_r, s_r; batch_r)), m_r)

where ``θ_r`` are run ``r``'s weights (built by the project's own :func:`entropylab.model.build_model` after seeding
with the run's seed, exactly as :func:`entropylab.training.train.run` builds them), ``s_r`` its non-trainable state
(the dropout layer's seed), ``m_r`` its Adam state, ``c_r`` its objective's coefficients in the group's loss (its
family's formula: :func:`group_loss`; for an objective that reads the head kernel, such as EMO, followed by the
run's current kernel, taken from ``θ_r``) and ``batch_r`` its own batch, drawn by
the seeded NumPy batcher (:mod:`entropylab.data.batches`) in the run's own order. Keras' stateless API
(``stateless_call``, ``optimizer.stateless_apply``) keeps the model and the optimizer those of a one-run ``fit``.
After each epoch every run's validation metrics come from one vmapped pass
(:meth:`GroupEvaluator.evaluate`); early stopping (``patience``) and a non-finite loss stop a run on its own, the
others go on. Each run then gets its own folder, history, metrics and weights through the same
:func:`entropylab.training.train.finish_run` as a run trained alone, with ``engine: fused`` and its group's size in
its metrics; its ``seconds`` column is the group's epoch time.

On a GPU one program for the group replaces ``R`` programs (``docs/performance.md``); on a CPU it gives nothing, and
the sweep's ``auto`` engine keeps its worker pool there. ``tests/test_fused.py`` checks that a fused group gives
every run the history of that run trained alone with ``fit``.
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .. import objectives
from ..data import Corpus
from . import store
from .config import RunConfig, current_backend
from .train import (
    RunResult,
    finish_run,
    load_run_corpus,
    nudge_initial_weights,
    prepare_run_dir,
    run_split,
    seed_everything,
)


def unfusable_reason(config: RunConfig) -> str | None:
    """Why ``config`` cannot join a fused group (``None`` when it can)."""
    if config.backend != "jax":
        return f"the fused engine runs on the JAX backend (set KERAS_BACKEND=jax), not {config.backend!r}"
    if not config.jit_compile:
        return "a fused group is one compiled program; the run asks for jit_compile false"
    return None


def group_key(config: RunConfig) -> str:
    """What runs of one group share: the whole identity and data folder but the seed and, for a fusable objective
    (one that names a family in the registry, :class:`entropylab.objectives.Family`: the paper's three objectives
    are one), its weight and its objective, which become its family; as one JSON text."""
    shared = config.identity()
    shared["data_dir"] = config.data_dir
    shared.pop("seed")
    family = objectives.family_of(config.loss)
    if family is not None:
        shared["loss"] = f"family:{family}"
        shared.pop("weight")
    return json.dumps(shared, sort_keys=True, default=str)


def group_loss(configs: list[RunConfig], kernel_shape: tuple[int, int] | None = None
               ) -> tuple[Callable[[Any], Any], np.ndarray]:
    """The group's loss as a function of one run's row of coefficients, and the rows ``(R, K)`` of its runs.

    A family's runs have their objective's coefficients in the family's formula
    (:func:`entropylab.objectives.family_coefficients`); the runs of an objective that is not fusable share one
    value, and the group's loss is that objective at it (their rows hold the value, unused). An objective that needs
    the head kernel (``needs_kernel``) reads it from the row the engine hands the loss: the value, then the run's
    current kernel of shape ``kernel_shape`` flattened (:func:`with_kernel`), so each run's loss uses its own."""
    from ..objectives import family_loss, keras_loss

    first = configs[0]
    family = objectives.family_of(first.loss)
    if family is not None:
        rows = np.array([objectives.family_coefficients(c.loss, c.weight) for c in configs], dtype=np.float32)
        return (lambda row: family_loss(family, row)), rows
    rows = np.array([[c.weight] for c in configs], dtype=np.float32)
    if objectives.get(first.loss).needs_kernel:
        if kernel_shape is None:
            raise ValueError(f"objective {first.loss!r} reads the head kernel; give group_loss its kernel_shape")
        return (lambda row: keras_loss(first.loss, first.weight, kernel=row[1:].reshape(kernel_shape))), rows
    loss = keras_loss(first.loss, first.weight)
    return (lambda row: loss), rows


def with_kernel(coefficients: Any, kernel: Any) -> Any:
    """One run's row for a loss that reads the head kernel: its coefficients, then its kernel flattened."""
    import jax.numpy as jnp

    return jnp.concatenate([coefficients, jnp.ravel(kernel)])


def plan_groups(configs: list[RunConfig], max_group: int | None = None) -> list[list[int]]:
    """Indices of ``configs`` grouped by :func:`group_key` (first-seen order), each group at most ``max_group``."""
    groups: dict[str, list[int]] = {}
    for index, config in enumerate(configs):
        groups.setdefault(group_key(config), []).append(index)
    size = max_group or max(len(configs), 1)
    return [members[i:i + size] for members in groups.values() for i in range(0, len(members), size)]


def train_group(configs: list[RunConfig | dict[str, Any]], run_dirs: list[str | Path | None] | None = None, *,
                corpus: Corpus | None = None, force: bool = False,
                report: Callable[[str], None] | None = None) -> list[RunResult]:
    """Train ``configs`` (one group: :func:`group_key` equal) as one program; one result per config, in order.

    A run whose folder already holds it finished is reused (not trained again), as :func:`run` does. An error in
    the group marks every run it was training ``FAILED`` and is raised.
    """
    configs = [RunConfig.from_dict(c) if isinstance(c, dict) else c for c in configs]
    if not configs:
        return []
    for config in configs:
        reason = unfusable_reason(config)
        if reason:
            raise ValueError(reason)
        if config.backend != current_backend():
            raise ValueError(f"the configs ask for the Keras backend {config.backend!r} but this process runs "
                             f"{current_backend()!r}; set KERAS_BACKEND={config.backend} before starting Python")
    if len({group_key(c) for c in configs}) > 1:
        raise ValueError("a fused group's runs must differ only in seed, and in objective and weight within a "
                         "family; group them with plan_groups")
    paths = [Path(d) if d is not None else None for d in (run_dirs or [None] * len(configs))]
    if len(paths) != len(configs):
        raise ValueError(f"{len(configs)} configs but {len(paths)} run folders")
    results: list[RunResult | None] = [None] * len(configs)
    todo = []
    for index, (config, path) in enumerate(zip(configs, paths, strict=True)):
        if path is not None and prepare_run_dir(path, config, force):
            record = store.load_run(path)
            results[index] = RunResult(config, record.history, record.metrics, "complete", path, reused=True)
        else:
            todo.append(index)
    if todo:
        trained = _train([configs[i] for i in todo], [paths[i] for i in todo], corpus, report or (lambda text: None))
        for index, result in zip(todo, trained, strict=True):
            results[index] = result
    return [r for r in results if r is not None]


def _train(configs: list[RunConfig], paths: list[Path | None], corpus: Corpus | None,
           report: Callable[[str], None]) -> list[RunResult]:
    for config, path in zip(configs, paths, strict=True):
        if path is not None:
            path.mkdir(parents=True, exist_ok=True)
            store.write_json(path / store.CONFIG, config.to_dict())
    try:
        return _train_unguarded(configs, paths, corpus, report)
    except Exception as exc:  # recorded in every run folder of the group, then re-raised
        for path in paths:
            if path is not None:
                store.mark_failed(path, f"fused group failed: {type(exc).__name__}: {exc}\n{traceback.format_exc()}")
        raise


def _train_unguarded(configs: list[RunConfig], paths: list[Path | None], corpus: Corpus | None,
                     report: Callable[[str], None]) -> list[RunResult]:
    import jax
    import jax.numpy as jnp
    import keras

    from ..metrics.bands import word_bands
    from ..metrics.validation import GroupEvaluator
    from ..model import build_model, head_kernel

    started = time.perf_counter()
    first = configs[0]
    if corpus is None:
        corpus = load_run_corpus(first)
    data = run_split(corpus, first)
    models = []
    for config in configs:  # each run's initial weights and dropout seed, as a run alone would build them
        seed_everything(config.seed)
        model = build_model(corpus.vocab_size, corpus.max_len - 1, embedding_dim=config.embedding_dim,
                            lstm_units=config.lstm_units, dropout=config.dropout, head=config.head)
        nudge_initial_weights(model, config.init_nudge_ulps, config.seed)
        models.append(model)
    template = models[0]
    kernel = head_kernel(template)
    loss_at, coefficient_rows = group_loss(configs, tuple(kernel.shape))
    # an objective that reads the head kernel gets each run's current one in its row (group_loss)
    kernel_at = [id(v) for v in template.trainable_variables].index(id(kernel))
    needs_kernel = objectives.get(first.loss).needs_kernel

    def row_of(coefficients: Any, trainable: list) -> Any:
        return with_kernel(coefficients, trainable[kernel_at]) if needs_kernel else coefficients
    optimizer = keras.optimizers.Adam(first.learning_rate)
    optimizer.build(template.trainable_variables)

    def stacked(variables_of: Callable[[Any], list]) -> list:
        return [jnp.stack([jnp.asarray(variables_of(m)[i].value) for m in models])
                for i in range(len(variables_of(template)))]

    state = (stacked(lambda m: m.trainable_variables), stacked(lambda m: m.non_trainable_variables),
             [jnp.stack([jnp.asarray(v.value)] * len(configs)) for v in optimizer.variables])
    coefficients = jnp.asarray(coefficient_rows)

    def one_step(trainable: list, non_trainable: list, optimizer_state: list, coefficients: Any, rows: Any,
                 x_all: Any, y_all: Any) -> tuple:
        x, y = x_all[rows], y_all[rows]

        def objective(trainable_: list) -> tuple:
            outputs, new_non_trainable = template.stateless_call(trainable_, non_trainable, x, training=True)
            return loss_at(row_of(coefficients, trainable_))(y, outputs), new_non_trainable

        (value, new_non_trainable), grads = jax.value_and_grad(objective, has_aux=True)(trainable)
        new_trainable, new_optimizer_state = optimizer.stateless_apply(optimizer_state, grads, trainable)
        return new_trainable, new_non_trainable, new_optimizer_state, value

    group_step = jax.vmap(one_step, in_axes=(0, 0, 0, 0, 0, None, None))

    @jax.jit
    def full_batches(state: tuple, coefficients: Any, rows: Any, x_all: Any, y_all: Any) -> tuple:
        """Every full batch of an epoch (``rows``: steps x runs x batch) in one ``lax.scan``."""
        def body(carry: tuple, step_rows: Any) -> tuple:
            *new_state, value = group_step(*carry, coefficients, step_rows, x_all, y_all)
            return tuple(new_state), value

        return jax.lax.scan(body, state, rows)

    @jax.jit
    def last_batch(state: tuple, coefficients: Any, rows: Any, x_all: Any, y_all: Any) -> tuple:
        *new_state, value = group_step(*state, coefficients, rows, x_all, y_all)
        return tuple(new_state), value

    from ..data.batches import stacked_orders, steps_per_epoch

    n, batch = len(data.y_train), first.batch_size
    full = n // batch
    steps = steps_per_epoch(n, batch)
    sizes = np.array([batch] * full + ([n - full * batch] if steps > full else []), dtype=np.float64)
    x_all, y_all = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    seeds = [c.seed for c in configs]
    evaluator = GroupEvaluator(template, data.x_val, data.y_val, loss_at, first.head, corpus.true_next,
                               runs=len(configs), bands=word_bands(data.y_train, corpus.vocab_size))
    evaluation_rows = jax.jit(jax.vmap(row_of))  # each run's row for its val_loss, its kernel of this epoch included
    count = len(configs)
    rows: list[list[dict[str, float]]] = [[] for _ in configs]
    bins: list[list[dict[str, list[float]]]] = [[] for _ in configs]
    active = [True] * count
    non_finite = [False] * count
    best = [(np.inf, 0, None)] * count  # (best val cross-entropy, its epoch, its weights when patience is set)
    kept: list[Any] = [None] * count  # the state a run stopped early keeps (its best epoch's)
    seconds: list[float] = []
    for epoch in range(first.epochs):
        orders = stacked_orders(n, seeds, epoch)
        epoch_start = time.perf_counter()
        values = []
        if full:
            grid = orders[:, : full * batch].reshape(count, full, batch).transpose(1, 0, 2)
            state, full_values = full_batches(state, coefficients, jnp.asarray(grid), x_all, y_all)
            values.append(full_values)
        if steps > full:
            state, tail_value = last_batch(state, coefficients, jnp.asarray(orders[:, full * batch:]), x_all, y_all)
            values.append(tail_value[None])
        step_losses = np.asarray(jnp.concatenate(values), dtype=np.float64)  # steps x runs; waits for the epoch
        seconds.append(time.perf_counter() - epoch_start)
        epoch_loss = (step_losses * sizes[:, None]).sum(axis=0) / sizes.sum()  # Keras' size-weighted running mean
        metrics = evaluator.evaluate(state[0], state[1], evaluation_rows(coefficients, state[0]))
        for r, config in enumerate(configs):
            if not active[r]:
                continue
            means, run_bins = metrics[r]
            rows[r].append({"epoch": epoch + 1, "loss": float(epoch_loss[r]), **means})
            bins[r].append({key: value.tolist() for key, value in run_bins.items()})
            value = means["val_cross_entropy"]
            if not np.all(np.isfinite(step_losses[:, r])):
                active[r], non_finite[r] = False, True
                continue
            if np.isfinite(value) and value < best[r][0]:
                snapshot = _run_state(state, r) if config.patience is not None else None
                best[r] = (value, epoch + 1, snapshot)
            elif config.patience is not None and epoch + 1 - best[r][1] >= config.patience:
                active[r] = False  # it keeps its best epoch's state or, with none, this one (as fit leaves it)
                kept[r] = best[r][2] or _run_state(state, r)
        for r, path in enumerate(paths):
            if path is not None and active[r]:
                store.write_json(path / store.PROGRESS, {"epoch": epoch + 1, "epochs": first.epochs,
                                                         "step": steps, "steps": steps})
        report(f"epoch {epoch + 1}/{first.epochs} of {count} fused run(s): {seconds[-1]:.2f} s")
        if not any(active):
            break
    results = []
    for r, (config, path, model) in enumerate(zip(configs, paths, models, strict=True)):
        final = kept[r] or (best[r][2] if config.patience is not None and best[r][2] is not None else None)
        _assign(model, final or _run_state(state, r))
        run_seconds = seconds[: len(rows[r])]
        results.append(finish_run(config, path, model, corpus, data, rows[r], bins[r], run_seconds, non_finite[r],
                                  best[r][1], started, extra={"engine": "fused", "group_size": count}))
    return results


def _run_state(state: tuple, r: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Run ``r``'s weights and non-trainable state, copied to the host."""
    return [np.asarray(v[r]) for v in state[0]], [np.asarray(v[r]) for v in state[1]]


def _assign(model: Any, run_state: tuple[list[np.ndarray], list[np.ndarray]]) -> None:
    trainable, non_trainable = run_state
    for variable, value in zip(model.trainable_variables, trainable, strict=True):
        variable.assign(value)
    for variable, value in zip(model.non_trainable_variables, non_trainable, strict=True):
        variable.assign(value)
