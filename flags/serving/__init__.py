"""Serving: how services read resolved configs. Every answer comes from the process's snapshot
(`flags.snapshots`), so a warm request costs no query; docs/serving.md describes the protocol.

- `resolve`: our REST endpoints, the snapshot and resolve (one flag or many), and the base
  `ServingView` the other endpoints share.
- `ofrep`: OpenFeature's OFREP 0.3.0 endpoints (one flag, bulk with ETag), rate-limited per token.
- `stream`: the change stream (server-sent events, one per environment), on the ASGI process.
- `requests`: reading a request, shared by resolve and OFREP: JSON body, context, ETag match.
- `auth`: the serving token cache, stream tickets, and the serving permission.
- `rate_limit`: the per-token rate limiter (Redis windows with local leases).
- `wsgi`: the fast path in front of Django for resolve and OFREP single-flag requests.
- `schema`: the serving authentication schemes, for the OpenAPI schema.
Routes are in `flags.api.urls` (`urlpatterns` for resolve and the stream, `ofrep_patterns`).
"""
