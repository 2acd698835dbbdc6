"""The event contract (Segment spec), validation, the write path and file importers."""
