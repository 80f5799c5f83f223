"""What runs inside the sandbox, before and around the candidate: start-up, PID 1,
confinement, the audit hook, the serving loop. Never imports ``sandbox.parent``: whatever
the child loads, a candidate can reach and patch, so it loads only what it needs."""
