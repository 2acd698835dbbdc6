"""identity (see ARCHITECTURE §2)."""
