"""TensorRT: the runner, CUDA device access, engine (plan) files and optimisation profiles.

Nothing in this package imports TensorRT or CUDA at import time.
"""
