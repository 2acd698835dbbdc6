"""The demo company: a seeded generator and a loader that uses the real collect paths."""
