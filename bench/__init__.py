"""Benchmarks of botkit against its peers (centrifuge-python, cent, bare websockets and httpx).

Run ``python -m bench`` (``--quick`` for the one-minute smoke run); see ``bench/RESULTS.md``.
Every measurement runs in a fresh subprocess (``python -m bench.worker``), botkit and its peer
taking turns, against the same local server on loopback.
"""
