"""Verifiable vehicle reports: building them (node side) and their summary."""
