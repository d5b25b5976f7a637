"""Runners on a Ray cluster (runner=ray): the local runners' per-file jobs as Ray tasks, results
streamed back to the driver, which writes the same files a local run writes (docs/scaling.md)."""
