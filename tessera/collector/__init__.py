"""Collector processes: the data plane of `tessera serve`.

Each one owns the public port with its siblings, authenticates write keys from the file
the core publishes, validates, appends to its own log in files and answers 200 once the
log is fsync'd; every other path goes to the core process (proxy.py). They never open the
store. See docs/ingest.md.
"""
