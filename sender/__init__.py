"""Sender: rate limits, the bot handler, and the Graph Send API."""
