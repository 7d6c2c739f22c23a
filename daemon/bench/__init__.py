"""Benchmarks that print figures: speed lives here, never in timed assertions inside tests."""
