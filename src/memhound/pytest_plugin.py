"""memhound's pytest plugin (placeholder: registers nothing yet)."""
