"""The inference process as the supervisor sees it: its kind and its entry point, without the
models, the gallery and the image libraries behind them.  `run_inference` imports
`facewatch.inference.process` in the child; the supervisor, which only starts it, never does
(cv2, Pillow, hnswlib, ONNX Runtime: about 30 MiB of PSS it would hold for nothing).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from facewatch.processes.child import ChildContext, ChildKind

if TYPE_CHECKING:
    from facewatch.config.daemon import DaemonConfig
    from facewatch.processes.channels import InferenceChannels

# Loading the models and enrolling the gallery takes a while before the first heartbeat
# loop; it stops after the sources (they produce its frames) and before the publisher.
KIND = ChildKind("inference", start_grace_s=120.0, stop_timeout_s=3.0, stop_order=1)


def run_inference(ctx: ChildContext, config: DaemonConfig, channels: InferenceChannels) -> None:
    from facewatch.inference.process import run_inference as run

    run(ctx, config, channels)
