"""Benchmarks that print figures (never asserted); run as ``python -m benchmarks.<name>``.

No product package imports this package: a benchmark may span services (the overhead one
runs a gateway and an STT worker in one process) and may use the tests' helpers.
"""
