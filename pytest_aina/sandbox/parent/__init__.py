"""The caller's side of the sandbox: the folder, the launch, the watchdog and the cleanup of
a child, how a run ended, and the timing protocol's clock, CPU accounting and verdicts."""
