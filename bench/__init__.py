"""Benchmarks: numbers with the command that produced them. Never run as tests."""
