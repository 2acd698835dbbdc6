"""Keys and scopes, consent, access and erasure, retention, the audit log."""
