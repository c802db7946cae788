"""The peer systems callplane is measured against, each behind the same workload interface."""
