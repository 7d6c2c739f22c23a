"""Frames in shared memory: a ring of slots per camera between stream and inference processes."""
