"""Tracking plans: per source, the events it may send and a JSON Schema for their
properties and traits, checked as the log is loaded (`screen.py`), managed and inferred
from recent events (`service.py`). See docs/plans.md."""
