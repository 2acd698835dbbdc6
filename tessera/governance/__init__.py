"""Data governance: data-subject requests (access, erasure, suppression) and retention.

Kept apart from `tessera.privacy` (keys, consent, users, audit), which the write path
imports: erasure reaches into every feature package, and the two would import each other.
"""
