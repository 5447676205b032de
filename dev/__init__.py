"""Development and test tooling, apart from the code a service image runs: the local stack
(`lull dev`), a fake Graph Send API (`lull fake-graph`), and embedded Redis servers for the
tests, benches and chaos runs. No runtime package imports it (tests/test_architecture.py)."""
