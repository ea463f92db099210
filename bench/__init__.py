"""Benchmarks of the bridge against the sandbox: ``python -m bench`` (see docs/performance.md)."""
