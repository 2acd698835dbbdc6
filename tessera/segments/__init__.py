"""segments (see ARCHITECTURE §2)."""
