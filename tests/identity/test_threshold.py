"""Which threshold applies (facewatch.identity.threshold): the one function and its bounds."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from facewatch.config.recognition import RecognitionConfig
from facewatch.engines.manifest import OpenSetCalibration
from facewatch.errors import ConfigError
from facewatch.identity.threshold import (
    FALLBACK_THRESHOLD,
    check_threshold,
    false_rate_at,
    operating_point,
    pair_rate_for,
    threshold_for,
)

# mobilefacenet-fused with flip, as measured by `facewatch eval openset` (rounded)
CALIBRATION = OpenSetCalibration(
    flip=True, source="test", pair_rates=[0.1, 0.01, 0.001, 1e-4, 1e-5],
    pair_thresholds=[0.166, 0.298, 0.393, 0.469, 0.534])


def test_precedence_config_gallery_calibration_manifest_fallback() -> None:
    kw = dict(configured=0.31, gallery=0.32, calibration=CALIBRATION, manifest=0.33)
    assert (operating_point(10, **kw).threshold, operating_point(10, **kw).source) == (0.31, "config")
    kw["configured"] = None
    assert operating_point(10, **kw).source == "gallery" and operating_point(10, **kw).threshold == 0.32
    kw["gallery"] = None
    point = operating_point(10, **kw)
    assert point.source == "calibration" and point.threshold == pytest.approx(
        threshold_for(CALIBRATION, 10, 0.01))
    kw["calibration"] = None
    assert operating_point(10, **kw).threshold == 0.33 and operating_point(10, **kw).source == "manifest"
    assert operating_point(10).threshold == FALLBACK_THRESHOLD
    assert operating_point(10).expected_false_rate is None


def test_the_threshold_grows_with_the_gallery_and_keeps_the_rate() -> None:
    thresholds = [threshold_for(CALIBRATION, n, 0.01) for n in (1, 2, 10, 100, 1000, 10_000)]
    assert thresholds == sorted(thresholds) and len(set(thresholds)) == 6
    for n, t in zip((1, 2, 10, 100, 1000, 10_000), thresholds):
        assert false_rate_at(CALIBRATION, t, n) == pytest.approx(0.01, rel=1e-6)
    # at 10 people a 1 % stranger rate is a per-pair rate of about 1e-3: the table's 0.393
    assert pair_rate_for(10, 0.01) == pytest.approx(1.005e-3, rel=1e-3)
    assert thresholds[2] == pytest.approx(0.393, abs=0.001)
    # 10,000 people need 1e-6, a decade past the table: extrapolated along its last decade
    assert thresholds[5] == pytest.approx(0.534 + (0.534 - 0.469), abs=0.002)
    # a stricter target, a higher threshold
    assert threshold_for(CALIBRATION, 100, 0.001) > threshold_for(CALIBRATION, 100, 0.01)


def test_describe_says_the_operating_point_in_words() -> None:
    point = operating_point(100, calibration=CALIBRATION)
    assert point.describe() == (f"at 100 people: threshold {point.threshold:.3f}, about 1 "
                                f"stranger track in 100 named (calibrated for a 1 % target)")
    fixed = operating_point(100, configured=0.3, calibration=CALIBRATION)
    assert "fixed by recognition.threshold" in fixed.describe()
    assert fixed.expected_false_rate is not None and fixed.expected_false_rate > 0.5
    assert operating_point(1, manifest=0.307).describe() == (
        "at 1 person: threshold 0.307 (the embedder's LFW pair threshold; no open-set "
        "calibration)")


@pytest.mark.parametrize("value", [-0.5, 0.0, 1.0, 1.2])
def test_one_definition_of_a_valid_threshold(value: float) -> None:
    with pytest.raises(ConfigError, match="between 0 and 1"):
        check_threshold(value, "x")
    with pytest.raises(ValidationError):
        RecognitionConfig(threshold=value)
    with pytest.raises(ConfigError):
        operating_point(5, configured=value)


def test_calibration_tables_are_checked() -> None:
    with pytest.raises(ValidationError, match="descending"):
        OpenSetCalibration(flip=False, source="", pair_rates=[0.001, 0.01],
                           pair_thresholds=[0.3, 0.4])
    with pytest.raises(ValidationError, match="ascending"):
        OpenSetCalibration(flip=False, source="", pair_rates=[0.01, 0.001],
                           pair_thresholds=[0.4, 0.3])
    with pytest.raises(ValidationError, match="one threshold per rate"):
        OpenSetCalibration(flip=False, source="", pair_rates=[0.01, 0.001, 1e-4],
                           pair_thresholds=[0.3, 0.4])
    with pytest.raises(ConfigError, match="max_false_rate"):
        threshold_for(CALIBRATION, 10, 0.9)
