"""Evaluation: scoring and generation."""
