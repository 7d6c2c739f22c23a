"""The open-set calibrations that facewatch's own embedders ship in their manifests.

Each is the output of `facewatch eval openset --lfw DIR --embedder NAME [--flip]
--write-calibration` on the full deep-funneled LFW (13,233 images of 5,749 people), copied here
so that `facewatch models fetch` writes it without LFW at hand:

- `pair_rates` / `pair_thresholds`: the similarity that each fraction of (stranger, enrolled
  person) pairs reaches, a stranger being the mean of three photos of one person (a "track"),
  an enrolled person one photo; facewatch.identity.threshold turns it into the threshold for a
  gallery size and a stranger false-name rate;
- `measured`: thresholds and TPIR measured directly at 10, 100 and 1,000 people enrolled (one
  photo each, 5 draws), for comparison.
"""

from __future__ import annotations

from facewatch.engines import catalog
from facewatch.engines.manifest import OpenSetCalibration, OpenSetPoint

_RATES = [0.1, 0.03, 0.01, 0.003, 0.001, 3e-4, 1e-4, 3e-5, 1e-5]


def _calibration(flip: bool, thresholds: list[float],
                 measured: list[tuple[int, float, float, float]]) -> OpenSetCalibration:
    return OpenSetCalibration(
        flip=flip,
        source="facewatch eval openset on 13233 LFW images of 5749 people: pairs of a 3-view "
               "stranger track and another person; 5 draws per size",
        pair_rates=_RATES, pair_thresholds=thresholds,
        measured=[OpenSetPoint(people=n, false_rate=f, threshold=t, tpir=tp)
                  for n, f, t, tp in measured])


OPEN_SET: dict[str, tuple[OpenSetCalibration, ...]] = {
    catalog.FUSED: (
        _calibration(True, [0.1661, 0.2412, 0.2979, 0.351, 0.3931, 0.4337, 0.4689, 0.5048, 0.5344], [
            (10, 0.01, 0.3847, 0.9904),
            (10, 0.001, 0.4567, 0.9713),
            (100, 0.01, 0.4535, 0.9717),
            (100, 0.001, 0.5181, 0.9456),
            (1000, 0.01, 0.5202, 0.9519),
            (1000, 0.001, 0.6965, 0.6279),
        ]),
        _calibration(False, [0.165, 0.2395, 0.296, 0.3489, 0.3906, 0.4311, 0.4659, 0.5018, 0.5321], [
            (10, 0.01, 0.3825, 0.9904),
            (10, 0.001, 0.4503, 0.9713),
            (100, 0.01, 0.4514, 0.9673),
            (100, 0.001, 0.5163, 0.9411),
            (1000, 0.01, 0.5175, 0.9457),
            (1000, 0.001, 0.6787, 0.6533),
        ]),
    ),
    catalog.FOAMLIU: (
        _calibration(False, [0.1447, 0.2097, 0.2596, 0.3084, 0.348, 0.3866, 0.4176, 0.4513, 0.4794], [
            (10, 0.01, 0.3378, 0.9873),
            (10, 0.001, 0.4069, 0.9554),
            (100, 0.01, 0.4042, 0.9656),
            (100, 0.001, 0.4697, 0.9218),
            (1000, 0.01, 0.4696, 0.9392),
            (1000, 0.001, 0.6076, 0.7205),
        ]),
    ),
    catalog.SIRIUS: (
        _calibration(False, [0.2047, 0.2931, 0.3574, 0.416, 0.4619, 0.5071, 0.5444, 0.5831, 0.6095], [
            (10, 0.01, 0.4594, 0.984),
            (10, 0.001, 0.5365, 0.9445),
            (100, 0.01, 0.5362, 0.953),
            (100, 0.001, 0.6043, 0.9041),
            (1000, 0.01, 0.6032, 0.911),
            (1000, 0.001, 0.7464, 0.5731),
        ]),
    ),
}
