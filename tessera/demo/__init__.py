"""demo (see ARCHITECTURE §2)."""
