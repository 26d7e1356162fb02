"""Corrections and interventions: human-in-the-loop (HIL) takeover for SAC, RaC recovery/correction data."""
