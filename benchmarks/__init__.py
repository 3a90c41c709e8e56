"""Benchmarks that span services (bus costs, overhead, streaming); never imported by product code."""
