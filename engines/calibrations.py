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


OPEN_SET: dict[str, tuple[OpenSetCalibration, ...]] = {}
