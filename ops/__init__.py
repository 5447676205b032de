"""Operator tools: simulate traffic, read the state in Redis, handle dead letters."""
