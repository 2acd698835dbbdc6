"""web (see ARCHITECTURE §2)."""
