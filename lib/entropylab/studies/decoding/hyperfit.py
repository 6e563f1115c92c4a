"""Hyperfitting (Carlsson et al. 2024, "The Hyperfitting Phenomenon: Sharpening and Stabilizing LLMs for
Open-Ended Text Generation"): a trained model fine-tuned further until its training loss is near zero on a small
set of texts. Their recipe, scaled to this model: start from the finished cross-entropy run, take the first
``headlines`` headlines of its training split (every prefix sequence of each), and train on them with Adam and the
cross-entropy loss, epoch after epoch, until the mean training cross-entropy (dropout off)

    ``L_fit = -(1/N) sum_i ln p(y_i | x_i)``

falls below ``target_loss`` nats, or ``max_epochs`` have run. Each epoch also records, on the study's dev prefixes
(the validation side's, :mod:`.grid`; never the test side's), the cross-entropy and the mean entropy ``H(p)`` of
the model's predictions (the paper finds hyperfitted models predict with very low entropy).

Dropout during the fit draws its masks from generators set from the recipe's ``seed`` alone
(:func:`entropylab.training.train.reseed_random_layers`), not from whatever state the process had when the model was
built, so the same recipe on the same run gives the same model in any process, whatever ran there before.

The model goes to the study's own folder, ``<study folder>/hyperfit/<setting>/`` (``model.weights.h5``,
``history.csv``, ``hyperfit.json`` and a ``COMPLETE`` marker written last; the weights through a partial file that a
failed write, such as a full disk's, removes), never into a run folder; a finished one with the same recipe and source
run is reused.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ...training import store
from .spec import HyperfitSpec


def fit_headlines(headline_index: np.ndarray, n_headlines: int) -> np.ndarray:
    """The rows owned by the first ``n_headlines`` distinct headlines in order of appearance."""
    firsts = list(dict.fromkeys(np.asarray(headline_index).tolist()))[:n_headlines]
    return np.flatnonzero(np.isin(headline_index, firsts))


def cross_entropy_and_entropy(model: Any, x: np.ndarray, y: np.ndarray, head: str) -> tuple[float, float]:
    """``(-(1/N) sum ln p(y_i | x_i), (1/N) sum H(p(. | x_i)))`` in nats, without dropout."""
    from ...decoding import entropy, model_distributions

    p = model_distributions(model, x, head)
    return float(-np.mean(np.log(np.maximum(p[np.arange(len(y)), y], 1e-300)))), float(entropy(p).mean())


def _finished_identity(out_dir: Path) -> dict[str, Any] | None:
    """The identity recorded in a finished folder's ``hyperfit.json``; ``None`` when it is damaged (cut: the model is
    fitted again, with a line saying so)."""
    try:
        return store.read_json(out_dir / "hyperfit.json").get("identity")
    except store.DamagedFileError as exc:
        print(f"{exc.path} is damaged ({exc.what}); the model is hyperfitted again", flush=True)
        return None


def hyperfit(run_dir: str | os.PathLike, spec: HyperfitSpec, out_dir: str | os.PathLike, val_rows: np.ndarray,
             loaded: tuple[Any, Any, Any, Any]) -> tuple[Any, pd.DataFrame]:
    """The hyperfitted model of the finished run ``run_dir`` and its history (module docstring). ``loaded`` is that
    run's ``(model, corpus, config, split)`` as the caller loaded them (the model is fitted in place); ``val_rows``
    are the dev (validation) rows of the split on which each epoch is measured."""
    import keras

    from ...objectives import keras_loss
    from ...training.train import reseed_random_layers, seed_everything

    out_dir = Path(out_dir)
    model, corpus, config, data = loaded
    identity = {"recipe": asdict(spec), "source": Path(run_dir).name, "validation_rows": len(val_rows)}
    if store.is_complete(out_dir) and _finished_identity(out_dir) == identity:
        model.load_weights(out_dir / store.WEIGHTS)
        return model, store.read_csv(out_dir / store.HISTORY, fix="delete that folder and run the study again")
    store.clear_markers(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    owners = corpus.subset(config.max_sequences).headline_index[data.train_index]
    rows = fit_headlines(owners, spec.headlines)
    x, y = data.x_train[rows], data.y_train[rows]
    x_val, y_val = data.x_val[val_rows], data.y_val[val_rows]
    seed_everything(spec.seed)
    reseed_random_layers(model, spec.seed)  # the dropout masks: built with the model, before this seeding
    model.compile(optimizer=keras.optimizers.Adam(spec.learning_rate), loss=keras_loss("cross_entropy"))
    started = time.perf_counter()
    history = []
    fit_ce, fit_h = cross_entropy_and_entropy(model, x, y, config.head)
    val_ce, val_h = cross_entropy_and_entropy(model, x_val, y_val, config.head)
    history.append({"epoch": 0, "fit_cross_entropy": fit_ce, "fit_entropy": fit_h, "val_cross_entropy": val_ce,
                    "val_entropy": val_h})
    epoch = 0
    while fit_ce >= spec.target_loss and epoch < spec.max_epochs:
        epoch += 1
        model.fit(x, y, batch_size=spec.batch_size, epochs=1, shuffle=True, verbose=0)
        fit_ce, fit_h = cross_entropy_and_entropy(model, x, y, config.head)
        val_ce, val_h = cross_entropy_and_entropy(model, x_val, y_val, config.head)
        history.append({"epoch": epoch, "fit_cross_entropy": fit_ce, "fit_entropy": fit_h,
                        "val_cross_entropy": val_ce, "val_entropy": val_h})
    frame = pd.DataFrame(history)
    store.write_csv(out_dir / store.HISTORY, frame, checked=True)
    store.atomic_save_weights(model, out_dir / store.WEIGHTS)
    store.write_json(out_dir / "hyperfit.json", {
        "identity": identity, "headlines": spec.headlines, "sequences": len(y), "epochs": epoch,
        "reached_target": bool(fit_ce < spec.target_loss), "seconds": time.perf_counter() - started,
        "final": history[-1]})
    store.mark_complete(out_dir)
    return model, frame
