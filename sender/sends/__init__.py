"""What a send may be, and the marks that make it exactly once."""
