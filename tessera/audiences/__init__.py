"""The DMP side: exports to ad platforms, the pixel and cookie sync, third-party data."""
