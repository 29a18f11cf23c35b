"""hw3.8: keepalived VRRP + IPVS direct routing. ``pytest --lab uml --pyargs lvs_harness.suites.hw38``."""
