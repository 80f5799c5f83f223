"""HTTP, one blueprint per concern: ``POST /webhook`` (:mod:`.webhooks`), ``POST
/telemetry`` (:mod:`.telemetry`), ``GET /healthz`` and ``GET /metrics`` (:mod:`.health`);
:mod:`.limits` reads bodies with a size limit, :mod:`.metrics` keeps the counters.
:func:`github_app.app.create_app` registers them."""
