"""Pieces shared by lull's services: settings, keys, Redis, logging, metrics."""
