"""The verdict rule (analysis/verdicts.py): planted better, worse, no-difference, small-but-significant,
inconclusive and too-few-seeds cases, Holm's correction on a hand case, and the paired test against SciPy's."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from entropylab.analysis.verdicts import Comparison, holm, paired_test, table_verdicts, verdict

SEEDS = 5
DELTA = 0.01  # the smallest effect worth reporting, in nats of cross-entropy


def planted(shift: float, noise: float, seed: int, n: int = SEEDS) -> tuple[np.ndarray, np.ndarray]:
    """A baseline's per-seed values and an objective's: the baseline plus ``shift`` plus noise of scale ``noise``."""
    rng = np.random.default_rng(seed)
    baseline = 5.0 + rng.normal(0.0, 0.3, n)  # seeds differ a lot; the pairs share that part
    return baseline + shift + rng.normal(0.0, noise, n), baseline


def test_holm_on_a_hand_case():
    # sorted: .005 x 4 = .02, .01 x 3 = .03, .03 x 2 = .06, .04 x 1 = .04 -> kept at .06 (step-down is monotone)
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1
    nan_kept = holm([0.01, math.nan, 0.02])
    assert math.isnan(nan_kept[1]) and nan_kept[0] == pytest.approx(0.02) and nan_kept[2] == pytest.approx(0.02)


def test_the_paired_test_is_scipys_paired_t_test():
    x, b = planted(-0.02, 0.01, seed=1)
    ours = paired_test(x, b)
    reference = stats.ttest_rel(x, b)
    assert ours.p == pytest.approx(reference.pvalue, rel=1e-10)
    assert ours.n == SEEDS and ours.low < ours.mean < ours.high


@pytest.mark.parametrize(("shift", "noise", "expected"), [
    (-0.10, 0.005, "better"),          # a large, consistent gain
    (+0.10, 0.005, "worse"),           # a large, consistent loss
    (0.0, 0.001, "no difference"),     # nothing there, measured tightly
    (-0.003, 0.0001, "no difference"),  # significant, but smaller than worth reporting
    (+0.05, 0.2, "inconclusive"),      # the interval reaches past the smallest effect on both sides
])
def test_planted_cases(shift, noise, expected):
    x, b = planted(shift, noise, seed=7)
    comparison = paired_test(x, b)
    if expected == "no difference" and shift:
        assert comparison.p < 0.01  # the small effect is significant on its own: the effect size decides
    [(corrected, found)] = table_verdicts([comparison], [DELTA], [True])
    assert found == expected, (comparison, corrected)


def test_higher_is_better_flips_the_direction():
    x, b = planted(-0.10, 0.005, seed=3)
    assert table_verdicts([paired_test(x, b)], [DELTA], [False])[0][1] == "worse"


def test_holm_turns_a_lone_significant_gain_into_inconclusive_among_many():
    b = np.array([5.1, 4.8, 5.3, 4.9, 5.0])
    target = paired_test(b + np.array([-0.03, -0.05, -0.01, -0.04, -0.02]), b)  # t = 4.2 on 4 degrees of freedom
    assert 0.01 < target.p < 0.05  # significant alone
    others = [paired_test(*planted(0.0, 0.05, seed=s)) for s in range(20, 29)]
    alone = table_verdicts([target], [DELTA], [True])[0]
    among = table_verdicts([target, *others], [DELTA] * 10, [True] * 10)[0]
    assert alone[1] == "better"
    assert among[0] >= 0.05 and among[1] == "inconclusive"


def test_too_few_seeds_is_refused_and_left_out_of_the_correction():
    few = paired_test(*planted(-0.10, 0.005, seed=5, n=3))
    assert few.n == 3
    [(corrected, found)] = table_verdicts([few], [DELTA], [True])
    assert found == "too few seeds" and math.isnan(corrected)


def test_exact_agreement_of_every_seed():
    same = paired_test([1.0, 2.0, 3.0, 4.0, 5.0], [1.5, 2.5, 3.5, 4.5, 5.5])
    assert same.p == 0.0 and table_verdicts([same], [DELTA], [True])[0][1] == "better"
    zero = paired_test([1.0] * 5, [1.0] * 5)
    assert zero.p == 1.0 and table_verdicts([zero], [DELTA], [True])[0][1] == "no difference"


@pytest.mark.parametrize("bad", [-0.01, math.nan, math.inf])
def test_a_bad_smallest_effect_is_refused(bad):
    with pytest.raises(ValueError, match="smallest effect must be a finite number >= 0"):
        verdict(Comparison(0.0, -1.0, 1.0, 5, 0.5), 0.5, bad)
