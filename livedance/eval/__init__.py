"""Metrics: beat alignment, FID, diversity, foot skate, jitter."""
