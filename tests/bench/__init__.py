"""`make bench`: throughput and latency benchmarks, run as `python -m tests.bench [NAME]`.

LULL_BENCH_SECONDS (closed-loop seconds per server, default 12), LULL_BENCH_ROUNDS
(default 3), LULL_BENCH_CONNECTIONS (default 128) and LULL_BENCH_LOADGEN (auto, wrk or
python) tune a run. No file here starts with test_, so pytest never collects them.
"""
