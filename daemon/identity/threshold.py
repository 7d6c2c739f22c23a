"""Which similarity threshold names someone: one function, one definition of a valid threshold.

`operating_point` is the only place that chooses; the daemon, `identify`, `gallery build`,
`config check` and the evaluations all ask it.  The first of these that is set applies:

1. `recognition.threshold` in the daemon config (or `--threshold` on the command line);
2. `threshold:` in the gallery YAML;
3. the embedder's open-set calibration (its manifest), for the number of people enrolled and
   the stranger false-name rate the user accepts (`recognition.max_false_rate`, 1 % by
   default): a stranger is compared with everyone enrolled, so a larger gallery needs a higher
   threshold for the same rate;
4. the embedder manifest's `threshold` (an embedder without an open-set calibration);
5. `FALLBACK_THRESHOLD`.

The calibration holds, per model, the similarity that a given fraction of (stranger, enrolled
person) pairs reaches, measured by `facewatch eval openset` on LFW.  A stranger is named in a
gallery of N people when any of the N pairs passes: for a per-pair rate p, about
1 - (1 - p)^N.  Treating the N comparisons as independent overestimates the rate when some
strangers resemble many people more than others do (the rate is concave in p), so the
threshold it gives errs high; `eval openset` shows it against the directly measured one at
10, 100 and 1,000 people.  Beyond the table's smallest rate the tail is extrapolated linearly
in log(rate) from its last decade, which for a tail that bends down (as similarity tails do)
again errs high.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from facewatch.errors import ConfigError

if TYPE_CHECKING:
    from facewatch.engines.manifest import OpenSetCalibration

# A threshold is a cosine similarity strictly between these (the config, the gallery YAML,
# manifests, --threshold and the identity stage all check this one range).
THRESHOLD_MIN = 0.0
THRESHOLD_MAX = 1.0
# The stranger false-name rate the daemon aims at unless told otherwise (per track).
DEFAULT_MAX_FALSE_RATE = 0.01
MAX_FALSE_RATE_MIN = 1e-4
MAX_FALSE_RATE_MAX = 0.5
# Used when nothing else sets a threshold (an embedder with neither calibration nor threshold).
FALLBACK_THRESHOLD = 0.4

ThresholdSource = Literal["config", "gallery", "calibration", "manifest", "fallback"]


def check_threshold(value: float, where: str) -> float:
    """`value` if it is a usable threshold; ConfigError naming `where` otherwise."""
    if not THRESHOLD_MIN < value < THRESHOLD_MAX:
        raise ConfigError(f"{where}: threshold must be between {THRESHOLD_MIN:g} and "
                          f"{THRESHOLD_MAX:g} (exclusive), got {value}")
    return value


@dataclass(frozen=True)
class OperatingPoint:
    threshold: float
    source: ThresholdSource
    people: int  # enrolled people the threshold is for
    max_false_rate: float  # the target (only steers the choice when source is "calibration")
    # The calibration's estimate of the stranger false-name rate at this threshold and gallery
    # size, whatever chose the threshold; None for an embedder without calibration.
    expected_false_rate: float | None

    def describe(self) -> str:
        """One line for people: "at 100 people: threshold 0.452, about 1 stranger track in 100
        named (calibrated for a 1 % target)"."""
        who = f"{self.people:,} {'person' if self.people == 1 else 'people'}"
        why = {"config": "fixed by recognition.threshold",
               "gallery": "fixed by the gallery's threshold",
               "calibration": f"calibrated for a {_percent(self.max_false_rate)} target",
               "manifest": "the embedder's LFW pair threshold; no open-set calibration",
               "fallback": "a fallback; the embedder carries no threshold"}[self.source]
        rate = ""
        if self.expected_false_rate is not None:
            rate = f", {_one_in(self.expected_false_rate)}"
        return f"at {who}: threshold {self.threshold:.3f}{rate} ({why})"

    def as_dict(self) -> dict[str, object]:
        return {"threshold": self.threshold, "source": self.source, "people": self.people,
                "max_false_rate": self.max_false_rate,
                "expected_false_rate": self.expected_false_rate, "text": self.describe()}


def operating_point(people: int, *, configured: float | None = None,
                    gallery: float | None = None,
                    calibration: OpenSetCalibration | None = None,
                    manifest: float | None = None,
                    max_false_rate: float = DEFAULT_MAX_FALSE_RATE) -> OperatingPoint:
    """The threshold that applies to a gallery of `people`, and why (see the module doc)."""
    people = max(int(people), 1)  # an empty gallery names nobody; any threshold will do
    source: ThresholdSource
    if configured is not None:
        threshold, source = check_threshold(configured, "recognition.threshold"), "config"
    elif gallery is not None:
        threshold, source = check_threshold(gallery, "the gallery's threshold"), "gallery"
    elif calibration is not None:
        threshold, source = threshold_for(calibration, people, max_false_rate), "calibration"
    elif manifest is not None:
        threshold, source = manifest, "manifest"
    else:
        threshold, source = FALLBACK_THRESHOLD, "fallback"
    expected = false_rate_at(calibration, threshold, people) if calibration is not None else None
    return OperatingPoint(threshold, source, people, max_false_rate, expected)


def pair_rate_for(people: int, false_rate: float) -> float:
    """The per-pair rate at which a stranger compared with `people` people is named with
    probability `false_rate` (independent comparisons)."""
    return -math.expm1(math.log1p(-false_rate) / max(people, 1))


def threshold_for(calibration: OpenSetCalibration, people: int, false_rate: float) -> float:
    """The threshold that keeps strangers named at about `false_rate` in a gallery of `people`."""
    if not MAX_FALSE_RATE_MIN <= false_rate <= MAX_FALSE_RATE_MAX:
        raise ConfigError(f"recognition.max_false_rate (--max-false-rate) must be between "
                          f"{MAX_FALSE_RATE_MIN:g} and {MAX_FALSE_RATE_MAX:g}, got {false_rate}")
    x = math.log10(pair_rate_for(people, false_rate))
    xs = [math.log10(r) for r in calibration.pair_rates]  # descending
    ys = list(calibration.pair_thresholds)  # ascending
    threshold = _interpolate(x, xs[::-1], ys[::-1])
    return min(max(threshold, THRESHOLD_MIN + 1e-3), THRESHOLD_MAX - 1e-3)


def false_rate_at(calibration: OpenSetCalibration, threshold: float, people: int) -> float:
    """The calibration's estimate of the stranger false-name rate at `threshold`."""
    xs = list(calibration.pair_thresholds)  # ascending
    ys = [math.log10(r) for r in calibration.pair_rates]
    p = 10 ** _interpolate(threshold, xs, ys)
    p = min(max(p, 0.0), 1.0)
    return -math.expm1(max(people, 1) * math.log1p(-p)) if p < 1.0 else 1.0


def _interpolate(x: float, xs: list[float], ys: list[float]) -> float:
    """Piecewise linear through (xs, ys) (xs ascending), extended linearly past both ends."""
    if len(xs) == 1:
        return ys[0]
    if x <= xs[0]:
        i = 0
    elif x >= xs[-1]:
        i = len(xs) - 2
    else:
        i = next(k for k in range(len(xs) - 1) if xs[k] <= x <= xs[k + 1])
    x0, x1, y0, y1 = xs[i], xs[i + 1], ys[i], ys[i + 1]
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0)


def _percent(rate: float) -> str:
    return f"{100 * rate:.3g} %"


def _one_in(rate: float) -> str:
    if rate <= 0:
        return "no stranger track expected to be named"
    n = 1.0 / rate
    if n < 1.5:
        return "nearly every stranger track named"
    shown = f"{n:,.0f}" if n < 100 else f"{float(f'{n:.2g}'):,.0f}"
    return f"about 1 stranger track in {shown} named"
