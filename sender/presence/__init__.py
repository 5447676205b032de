"""Read receipts and typing: when to show them and the calls that do."""
