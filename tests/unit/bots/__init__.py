"""Tests of the example bots in bots/, written with the public harness."""
