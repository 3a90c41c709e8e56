"""Benchmarks that span services; never imported by a product package."""
