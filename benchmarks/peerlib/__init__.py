"""Helpers of benchmarks/peers.py: the peer model per engine and one runner per engine (issue 9)."""
