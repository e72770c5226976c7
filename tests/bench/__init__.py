"""Fieldsight benchmarks: live latency, drift, capacity and a naive baseline, on loopback.

Run ``make bench`` (or ``python -m tests.bench [--quick]`` inside a loopback-only network
namespace); see ``tests/bench/__main__.py``.
"""
