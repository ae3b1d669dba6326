"""Test helpers shared by tests and benchmarks (local servers, fixtures)."""
