"""The daemon's alarm rule FG > BG + n*sqrt(BG): statistics and the running evaluator."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.rpm_alarm import (
    ChannelGroupEvaluator,
    alarm_threshold,
    exceeds,
    sigma,
)

OCCUPANCIES = 100_000
WINDOWS = 8  # 1 s windows per occupancy (an 8 s truck passage)
CHANNELS = 4


def poisson_upper_tail(mean: float, threshold: float) -> float:
    """P(X > threshold) for X ~ Poisson(mean), summed from the tail (no cancellation)."""
    first = math.floor(threshold) + 1
    last = int(mean + 40 * math.sqrt(mean) + 60)
    terms = (
        math.exp(k * math.log(mean) - mean - math.lgamma(k + 1)) for k in range(first, last)
    )
    return math.fsum(terms)


@settings(max_examples=12, deadline=None, derandomize=True)
@given(
    background=st.floats(min_value=2.0, max_value=1000.0),
    n_sigma=st.floats(min_value=2.5, max_value=7.0),
)
def test_false_alarm_rate_on_pure_background_within_statistical_bound(
    background: float, n_sigma: float
) -> None:
    rng = np.random.default_rng(20261204)
    counts = rng.poisson(background, size=(OCCUPANCIES, WINDOWS, CHANNELS))

    alarmed = exceeds(counts, background, n_sigma).any(axis=(1, 2))
    observed = int(alarmed.sum())

    # each window of each channel is an independent trial with the exact Poisson tail
    p_window = poisson_upper_tail(background, alarm_threshold(background, n_sigma))
    p_occupancy = 1.0 - (1.0 - p_window) ** (WINDOWS * CHANNELS)
    expected = OCCUPANCIES * p_occupancy
    spread = math.sqrt(OCCUPANCIES * p_occupancy * (1.0 - p_occupancy))
    assert abs(observed - expected) <= 5 * spread + 1, (observed, expected)


def test_rule_at_the_threshold() -> None:
    # BG 400: threshold 400 + 6 * 20 = 520
    assert alarm_threshold(400.0, 6.0) == 520.0
    assert not exceeds(520.0, 400.0, 6.0)
    assert exceeds(521.0, 400.0, 6.0)
    assert sigma(520.0, 400.0) == 6.0


def test_zero_background_channel_does_not_alarm_on_one_count() -> None:
    # a neutron tube that is not fitted reports 0 background; the floor of 1 cps applies
    assert not exceeds(1.0, 0.0, 6.0)
    assert exceeds(8.0, 0.0, 6.0)


def test_evaluator_sums_five_gamma_samples_into_one_second() -> None:
    evaluator = ChannelGroupEvaluator(background=(400.0, 400.0), n_sigma=6.0, window=5)
    for _ in range(4):
        evaluator.add((80, 80))
    assert evaluator.windows == 0
    evaluator.add((120, 80))  # window sums 440 and 400: below the 520 threshold
    assert not evaluator.alarm
    for _ in range(4):
        evaluator.add((120, 80))  # channel 0 window now 600 > 520
    assert evaluator.alarm
    assert evaluator.peaks()[0] == 10.0
    assert evaluator.peaks()[1] == 0.0


def test_short_occupancy_compares_with_background_of_its_own_length() -> None:
    evaluator = ChannelGroupEvaluator(background=(400.0,), n_sigma=6.0, window=5)
    evaluator.add((80,))
    evaluator.add((80,))
    evaluator.finish()  # 160 counts in 0.4 s against 160 expected: no alarm
    assert evaluator.windows == 1
    assert not evaluator.alarm

    hot = ChannelGroupEvaluator(background=(400.0,), n_sigma=6.0, window=5)
    hot.add((200,))
    hot.add((200,))
    hot.finish()
    assert hot.alarm
