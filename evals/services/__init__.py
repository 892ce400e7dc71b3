"""Writes of the evals app, one area per module (eval sets, runs, gate, calibration, live scoring)."""
