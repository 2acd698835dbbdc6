"""profiles (see ARCHITECTURE §2)."""
