"""`make bench`: throughput and latency benchmarks, run as `python -m tests.bench [NAME]`.

No file here starts with test_, so pytest never collects them; `make test` does not run them.
"""
