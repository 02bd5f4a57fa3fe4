"""Metric definitions (POPE, bootstrap statistics), independent of models."""
