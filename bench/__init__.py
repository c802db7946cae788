"""Benchmarks that run callplane and its peers (RQ, Celery, huey) on the same workloads."""
