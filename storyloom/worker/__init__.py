"""Worker processes: claim jobs from the queue and run them with models kept warm.

``runner.Worker`` (one job at a time, heartbeats, progress, outcomes), ``resources.ModelResources`` (lazy,
warm models within a memory budget), ``handlers`` (kind → function), ``supervisor.Supervisor`` (one
process per device, restarted with backoff). Imports nothing heavy until a model is needed.
"""
