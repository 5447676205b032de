"""The Graph API client: requests, Meta's errors, payloads and routes."""
