"""Housekeeping: missed deliveries, telemetry retention, the scheduled Reasoner runs."""

from __future__ import annotations

import time

from github_app.github import redelivery
from github_app.jobs import JobContext, handler
from github_app.jobs.repository import reason_job


@handler("redeliver")
def redeliver(ctx: JobContext):
    gh = ctx.services.auth.app_client()
    return redelivery.redeliver_failed(gh, ctx.store, ctx.config["REDELIVERY_LOOKBACK_SECONDS"])


@handler("prune")
def prune(ctx: JobContext):
    days = ctx.config["TELEMETRY_RETENTION_DAYS"]
    return {"deleted": ctx.store.prune_telemetry(time.time() - days * 86400)}


@handler("reason_all")
def reason_all(ctx: JobContext):
    names = []
    for repo in ctx.store.repositories():
        if ctx.store.telemetry_summary(repo["full_name"])["windows"]:
            ctx.then(reason_job(repo["full_name"], repo["installation_id"]))
            names.append(repo["full_name"])
    return {"repositories": names}
