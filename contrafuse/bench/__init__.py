"""Benchmark helpers: timing, machine description, result files."""
