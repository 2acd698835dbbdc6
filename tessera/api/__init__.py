"""HTTP edges: the Segment-compatible collect API and the admin REST API. Thin."""
