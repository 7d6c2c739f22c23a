"""Typed, validated configuration for the daemon, plus example files and the event schema."""
