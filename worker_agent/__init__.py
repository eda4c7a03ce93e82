"""The worker agent: registers a host with the API, runs the jobs assigned to it through an
executor (docker or process), streams their output and reports their results."""
