"""TensorRT: the runner, profile dispatch (exact, ranged, tiled; one call at a time), CUDA device
access, engine (plan) files, optimisation profiles and the FP16 ONNX models.

Nothing in this package imports TensorRT or CUDA at import time.
"""
