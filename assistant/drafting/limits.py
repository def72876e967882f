"""Limits on what a person may ask of the drafter, shared by the forms and the drafter."""

MAX_INSTRUCTIONS = 2000
