"""Processor: parse webhook bodies, keep one window per conversation, emit batches."""
