"""Webhook ingest: verify Meta's signature, store the raw body in Redis, answer 200."""
