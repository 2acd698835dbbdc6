"""audiences (see ARCHITECTURE §2)."""
