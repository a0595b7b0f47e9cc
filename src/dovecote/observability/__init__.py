"""Metrics and logs: what the people running Dovecote watch it by (docs/OPERATIONS.md).

- `wiring.install(app, settings)` is the application's only wiring: the request-id /
  access-log / metrics layer around the whole app (`middleware`), the database pool gauges
  (`pools`), and `/metrics` behind a bearer token when DOVECOTE_METRICS_TOKEN is set.
- `serving`: what `dovecote serve` adds: a fresh multiprocess directory per run, the
  metrics-only listener (DOVECOTE_METRICS_BIND), a supervisor that marks dead workers.
- `logs`: JSON or text lines, the request id in each, credentials scrubbed.
"""
