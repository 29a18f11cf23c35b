"""Shipped homework suites; run one with ``pytest --pyargs lvs_harness.suites.<name>``."""
