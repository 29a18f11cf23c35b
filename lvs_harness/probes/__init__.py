"""Probes: read the live state of a lab host and parse it into values (no asserting here)."""
