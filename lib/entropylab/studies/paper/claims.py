"""The paper's claims (§4.1-§5), each a sentence with the rule and the check that gives its verdict."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from ...analysis import claims as claims_module
from ...analysis.claims import (
    AGREE,
    CANNOT_TELL,
    DISAGREE,
    Check,
    Claim,
    combine,
    flat_losses_check,
    fmt_pct,
    missing,
    runs_of,
    trend_check,
    weights_of,
)
from ...analysis.trends import FLAT_CHANGE, SAME_RELATIVE, TREND_TOLERANCE, relative_slope
from ...experiments.results import final_epoch
from ...objectives import CONTROL, ENTROPY, KL
from .predictions import generation_summary, words_of
from .reported import PAPER_PREDICTIONS


def _check_control_flat(results: pd.DataFrame, predictions: Mapping[str, pd.DataFrame]) -> Check:
    return flat_losses_check(results, CONTROL, [None])


def _diversity(predictions: Mapping[str, pd.DataFrame], key: str) -> int | None:
    return generation_summary(words_of(predictions[key]))["distinct_words"] if key in predictions else None


def _check_control_words(results: pd.DataFrame, predictions: Mapping[str, pd.DataFrame]) -> Check:
    n = _diversity(predictions, "control")
    if n is None:
        return missing("the control's prediction table (notebook 04)")
    return Check(f"{n} distinct word(s) in the six continuations", AGREE if n <= 3 else DISAGREE)


def _check_entropy_start(results: pd.DataFrame, predictions: Mapping[str, pd.DataFrame]) -> Check:
    control, entropy = runs_of(results, CONTROL), runs_of(results, ENTROPY, 1e-7)
    if not control or not entropy:
        return missing("the control and entropy_regularized w=1e-07 runs")
    diffs, verdicts = [], []
    for seed in sorted(set(control) & set(entropy)):
        a = float(control[seed]["paper_entropy"].iloc[0])
        b = float(entropy[seed]["paper_entropy"].iloc[0])
        diff = (b - a) / max(abs(a), abs(b))
        diffs.append(diff)
        verdicts.append(AGREE if diff < -SAME_RELATIVE else DISAGREE)
    if not diffs:
        return missing("control and entropy runs with the same seed")
    verdict, note = combine(verdicts)
    return Check(f"epoch-1 entropy, regularized vs control: {fmt_pct(diffs)}", verdict, note)


def _check_entropy_same_rate(results: pd.DataFrame, predictions: Mapping[str, pd.DataFrame]) -> Check:
    control, entropy = runs_of(results, CONTROL), runs_of(results, ENTROPY, 1e-7)
    if not control or not entropy:
        return missing("the control and entropy_regularized w=1e-07 runs")
    gaps, verdicts = [], []
    for seed in sorted(set(control) & set(entropy)):
        a = relative_slope(control[seed]["epoch"], control[seed]["paper_entropy"])
        b = relative_slope(entropy[seed]["epoch"], entropy[seed]["paper_entropy"])
        gap = b - a
        gaps.append(gap)
        verdicts.append(None if not math.isfinite(gap) else AGREE if abs(gap) <= TREND_TOLERANCE else DISAGREE)
    if not gaps:
        return missing("control and entropy runs with the same seed")
    verdict, note = combine(verdicts)
    return Check(f"entropy slope, regularized minus control: {fmt_pct(gaps)}/epoch", verdict, note)


def _check_entropy_kl_increases(results: pd.DataFrame, predictions: Mapping[str, pd.DataFrame]) -> Check:
    return trend_check(results, ENTROPY, [1e-7], ("paper_kl",), lambda t: t == "increasing")


def _check_entropy_no_decrease(results: pd.DataFrame, predictions: Mapping[str, pd.DataFrame]) -> Check:
    weights = weights_of(results, ENTROPY)
    if not weights:
        return missing("entropy_regularized runs")
    return trend_check(results, ENTROPY, weights, ("paper_entropy", "paper_kl"), lambda t: t != "decreasing")


def _check_entropy_flat_losses(results: pd.DataFrame, predictions: Mapping[str, pd.DataFrame]) -> Check:
    weights = weights_of(results, ENTROPY)
    return flat_losses_check(results, ENTROPY, weights) if weights else missing("entropy_regularized runs")


def _check_kl100_entropy(results: pd.DataFrame, predictions: Mapping[str, pd.DataFrame]) -> Check:
    return trend_check(results, KL, [100.0], ("paper_entropy",), lambda t: t == "decreasing")


def _check_kl_decreases(results: pd.DataFrame, predictions: Mapping[str, pd.DataFrame]) -> Check:
    return trend_check(results, KL, [10.0, 100.0], ("paper_kl",), lambda t: t == "decreasing")


def _check_kl_loss_decreases(results: pd.DataFrame, predictions: Mapping[str, pd.DataFrame]) -> Check:
    return trend_check(results, KL, [10.0, 100.0], ("loss",), lambda t: t == "decreasing")


def _check_kl_gap(results: pd.DataFrame, predictions: Mapping[str, pd.DataFrame]) -> Check:
    w10, w100 = runs_of(results, KL, 10.0), runs_of(results, KL, 100.0)
    if not w10 or not w100:
        return missing("kl_regularized w=10 and w=100 runs")

    def gap(run: pd.DataFrame) -> float:
        last = run.iloc[-1]
        return float(last["val_loss"] / last["loss"] - 1.0)

    verdicts, g10s, g100s = [], [], []
    for seed in sorted(set(w10) & set(w100)):
        g10, g100 = gap(w10[seed]), gap(w100[seed])
        g10s.append(g10)
        g100s.append(g100)
        verdicts.append(AGREE if g100 > g10 + SAME_RELATIVE and abs(g10) <= 0.25 else DISAGREE)
    if not verdicts:
        return missing("w=10 and w=100 runs with the same seed")
    verdict, note = combine(verdicts)
    return Check(f"final val_loss/loss - 1: w=10 {fmt_pct(g10s)}, w=100 {fmt_pct(g100s)}", verdict, note)


def _check_kl10_best(results: pd.DataFrame, predictions: Mapping[str, pd.DataFrame]) -> Check:
    last = final_epoch(results[results["objective"] == KL])
    if last.empty or not np.isclose(last["weight"], 10.0).any() or last["weight"].nunique() < 2:
        return missing("kl_regularized runs at w=10 and at least one other weight")
    means = last.groupby("weight")["val_cross_entropy"].mean()
    best = float(means.idxmin())
    text = ", ".join(f"w={w:g}: {v:.3f}" for w, v in means.items())
    return Check(f"final validation cross-entropy (nats): {text}", AGREE if np.isclose(best, 10.0) else DISAGREE,
                 f"lowest at w={best:g}")


def _check_kl10_diverse(results: pd.DataFrame, predictions: Mapping[str, pd.DataFrame]) -> Check:
    a, b = _diversity(predictions, "control"), _diversity(predictions, "kl_regularized_w10")
    if a is None or b is None:
        return missing("the control and KL w=10 prediction tables (notebook 04)")
    return Check(f"distinct words: KL w=10 {b}, control {a}", AGREE if b > a else DISAGREE)


def _check_kl100_diverse(results: pd.DataFrame, predictions: Mapping[str, pd.DataFrame]) -> Check:
    a, b = _diversity(predictions, "control"), _diversity(predictions, "kl_regularized_w100")
    if a is None or b is None:
        return missing("the control and KL w=100 prediction tables (notebook 04)")
    return Check(f"distinct words: KL w=100 {b}, control {a}", AGREE if b > a else DISAGREE)


def _check_relevance(results: pd.DataFrame, predictions: Mapping[str, pd.DataFrame]) -> Check:
    return Check("not computed", CANNOT_TELL, "relevance to the seed text needs human judgement")


def _check_kl_benefit(results: pd.DataFrame, predictions: Mapping[str, pd.DataFrame]) -> Check:
    last = final_epoch(results)
    control = last[last["objective"] == CONTROL]
    kl10 = last[(last["objective"] == KL) & np.isclose(last["weight"].astype(float), 10.0)]
    if control.empty or kl10.empty:
        return missing("the control and kl_regularized w=10 runs")
    a, b = float(control["val_perplexity"].mean()), float(kl10["val_perplexity"].mean())
    ratio = b / a
    measured = f"final validation perplexity: KL w=10 {b:.4g}, control {a:.4g} (ratio {ratio:.3f})"
    unigram = (float(kl10["ref_unigram_perplexity"].mean()) if "ref_unigram_perplexity" in kl10
               else math.nan)
    if math.isfinite(unigram):
        measured += f"; unigram reference {unigram:.4g}"
        if "ref_kneser_ney_perplexity" in kl10 and kl10["ref_kneser_ney_perplexity"].notna().any():
            measured += f", Kneser-Ney reference {float(kl10['ref_kneser_ney_perplexity'].mean()):.4g}"
        if ratio < 0.95 and b >= unigram:
            return Check(measured, DISAGREE, "lower than the control's, but no better than a unigram count model")
    return Check(measured, AGREE if ratio < 0.95 else DISAGREE)


def _check_kl_stable(results: pd.DataFrame, predictions: Mapping[str, pd.DataFrame]) -> Check:
    last = final_epoch(results)
    groups = {"KL w=10": last[(last["objective"] == KL) & np.isclose(last["weight"].astype(float), 10.0)],
              "control": last[last["objective"] == CONTROL],
              "entropy w=1e-07": last[(last["objective"] == ENTROPY)
                                      & np.isclose(last["weight"].astype(float), 1e-7, rtol=1e-6, atol=0.0)]}
    if any(len(g) < 2 for g in groups.values()):
        return missing("at least two seeds of the control, entropy w=1e-07 and KL w=10 runs")
    cv = {name: float(g["val_loss"].std(ddof=1) / abs(g["val_loss"].mean())) for name, g in groups.items()}
    text = ", ".join(f"{name} {100 * v:.2f}%" for name, v in cv.items())
    best = min(cv, key=cv.get)
    return Check(f"seed-to-seed CV of final val_loss: {text}", AGREE if best == "KL w=10" else DISAGREE,
                 f"lowest for {best}")



def _paper_diversity(key: str) -> str:
    return f"{generation_summary(PAPER_PREDICTIONS[key])['distinct_words']} distinct words"


TREND_RULE = f"decreasing/increasing: relative slope beyond ∓{TREND_TOLERANCE:.0%} per epoch, every seed"
CLAIMS: tuple[Claim, ...] = (
    Claim("4.1", "The control's training and validation losses show no trend over the epochs.",
          f"agree if |first→last change| ≤ {FLAT_CHANGE:.0%} for both, every seed", _check_control_flat),
    Claim("4.1", "The control's continuations repeat two short words ('To', 'A').",
          "agree if ≤ 3 distinct words over the six continuations", _check_control_words,
          _paper_diversity("control")),
    Claim("4.2", "Entropy regularization (w=1e-7) starts at a slightly lower entropy than the control.",
          f"agree if epoch-1 entropy is lower by more than {SAME_RELATIVE:.1%}, every seed", _check_entropy_start),
    Claim("4.2", "The entropy penalty does not change the entropy's rate of change (same as the control).",
          f"agree if the relative slopes differ by ≤ {TREND_TOLERANCE:.0%} per epoch", _check_entropy_same_rate),
    Claim("4.2", "With entropy regularization (w=1e-7) the KL divergence increases over the epochs.",
          TREND_RULE, _check_entropy_kl_increases),
    Claim("4.2", "For no entropy weight does the entropy or the KL divergence decrease.",
          f"agree if no slope is below -{TREND_TOLERANCE:.0%} per epoch", _check_entropy_no_decrease),
    Claim("4.2", "For every entropy weight, training and validation losses stay roughly constant.",
          f"agree if |first→last change| ≤ {FLAT_CHANGE:.0%}, every weight and seed", _check_entropy_flat_losses),
    Claim("4.3", "KL weight 100 gives a consistently decreasing entropy.", TREND_RULE, _check_kl100_entropy),
    Claim("4.3", "KL weights 10 and 100 give decreasing KL divergences.", TREND_RULE, _check_kl_decreases),
    Claim("4.3", "KL weights 10 and 100 give decreasing (converging) training losses.", TREND_RULE,
          _check_kl_loss_decreases),
    Claim("4.3", "With KL weight 100 the validation loss stays high against the training loss; with 10 the two "
                 "are comparable.",
          "agree if the final gap val_loss/loss - 1 is larger at w=100 and within ±25% at w=10",
          _check_kl_gap),
    Claim("4.3", "KL weight 10 is the best of the weights tried.",
          "agree if w=10 has the lowest final validation cross-entropy of p among the KL weights",
          _check_kl10_best),
    Claim("4.4", "With KL weight 10 the continuations are more diverse than the control's.",
          "agree if more distinct words than the control", _check_kl10_diverse,
          f"{_paper_diversity('kl_regularized_w10')} vs {_paper_diversity('control')}"),
    Claim("4.4", "With KL weight 100 the continuations are also more diverse than the control's.",
          "agree if more distinct words than the control", _check_kl100_diverse,
          f"{_paper_diversity('kl_regularized_w100')} vs {_paper_diversity('control')}"),
    Claim("4.4", "The KL weight-100 continuations are unrelated to the seed text (overfitting).",
          "not computable", _check_relevance),
    Claim("5", "KL-divergence regularization brings a substantial benefit over the control.",
          "agree if the final validation perplexity of KL w=10 is at least 5% below the control's and below "
          "the unigram reference's",
          _check_kl_benefit),
    Claim("5", "KL regularization gives more stable, consistent training and validation losses.",
          "agree if KL w=10 has the smallest seed-to-seed coefficient of variation of the final val_loss",
          _check_kl_stable),
)



def claims_table(results: pd.DataFrame, predictions: Mapping[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """Every claim of :data:`CLAIMS` checked against ``results`` and the prediction tables (notebook 04)."""
    return claims_module.claims_table(CLAIMS, results, predictions)
