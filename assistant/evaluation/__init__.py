"""Evaluation harnesses: labelled corpora through the configured pipeline."""
