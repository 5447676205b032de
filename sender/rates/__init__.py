"""The rate limits a send counts against, shared by all replicas."""
