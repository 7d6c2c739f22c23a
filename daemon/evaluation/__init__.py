"""Accuracy measurements on public benchmarks (LFW verification and open-set identification)."""
