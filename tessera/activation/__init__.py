"""activation (see ARCHITECTURE §2)."""
