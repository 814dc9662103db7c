"""Sensors of the Debitura provider."""
