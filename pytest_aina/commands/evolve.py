"""``aina evolve --telemetry FILE``: the whole loop, ending in a branch on the local forge.

The loop is :func:`pytest_aina.changer.pipeline.evolve`, the same one the GitHub App runs;
this module reads the flags into :class:`~pytest_aina.changer.settings.EvolutionSettings`,
shows the progress, publishes the change on the local forge and chooses the exit code.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser(
        "evolve",
        help="reason over telemetry, search for a better kernel, open a PR on the local forge",
        description="Run the evolution loop end to end: reason over the telemetry, pick the top "
        "hypothesis the Changer can act on, search candidates in the sandbox, and write "
        "the change as a branch aina/... with one commit and its PR body.",
    )
    p.add_argument("--telemetry", required=True, metavar="FILE", help="telemetry windows, JSON lines")
    p.add_argument("--repo", default=".", metavar="DIR", help="the repository (default: .)")
    p.add_argument("--specs", default="specs", metavar="DIR", help="spec folder, relative to the repo (default: specs)")
    p.add_argument("--hypothesis", metavar="ID", help="act on this hypothesis id instead of the top actionable one")
    p.add_argument(
        "--proposer",
        default="metaparams",
        metavar="NAMES",
        help="comma-separated proposers: metaparams, llm, or an aina.proposers entry point (default: metaparams)",
    )
    p.add_argument("--model", help="LLM proposer: litellm model, e.g. openai/gpt-4o or openai/<local model>")
    p.add_argument("--api-base", help="LLM proposer: base URL of an OpenAI-compatible server")
    p.add_argument("--api-key-env", help="LLM proposer: name of the environment variable holding the API key")
    p.add_argument("--budget-evals", type=int, default=8, metavar="N", help="candidates to evaluate (default: 8)")
    p.add_argument("--budget-seconds", type=float, default=900, metavar="S", help="wall-time budget (default: 900)")
    p.add_argument(
        "--budget-tokens",
        type=_tokens,
        default=None,
        metavar="N",
        help="LLM tokens (prompt + completion, every call) the search may spend; 'none': no limit "
        "(default: the settings' budget.tokens, see docs/llm-proposer.md)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the proposers and the timing (default: 0)")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="candidates evaluated at once (default: min(2, cores); with --executor ray, one per GPU of the "
        "cluster, or per CPU on a cluster without GPUs)",
    )
    p.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="where evaluations run: this machine, or a Ray cluster, one task per candidate (default: local)",
    )
    p.add_argument(
        "--ray-address",
        default=None,
        metavar="HOST:PORT",
        help="--executor ray: the cluster's head node (default: RAY_ADDRESS)",
    )
    p.add_argument("--fresh", action="store_true", help="ignore the checkpoint of an earlier, interrupted run")
    p.add_argument("--no-forge", action="store_true", help="write nothing to git; print the change only")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(run=run)


def _tokens(text: str) -> int | str:
    if text.strip().lower() == "none":
        return "none"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a whole number of tokens or 'none', got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"a whole number of tokens >= 0 or 'none', got {text!r}")
    return value


def run(args: argparse.Namespace) -> int:
    # the loop's modules load here, not when `aina --help` lists the commands
    from pytest_aina.changer import forge, pipeline
    from pytest_aina.changer.change import ChangeError
    from pytest_aina.changer.executors import ExecutorError
    from pytest_aina.changer.settings import Budget, EvolutionSettings, SettingsError
    from pytest_aina.reasoner.report import reason_about_file

    repo = Path(args.repo).resolve()
    say = (lambda *a: print(*a, file=sys.stderr)) if args.json else print
    proposers = tuple(p.strip() for p in args.proposer.split(",") if p.strip())
    llm = {
        k: v for k, v in (("model", args.model), ("api_base", args.api_base), ("api_key_env", args.api_key_env)) if v
    }
    if "llm" in proposers and "model" not in llm:
        print(
            "aina evolve: --proposer llm needs --model (and --api-base / --api-key-env for your provider)",
            file=sys.stderr,
        )
        return 2
    workers = {} if args.workers is None else {"workers": args.workers}  # else the settings' default
    tokens = (
        {} if args.budget_tokens is None else {"tokens": None if args.budget_tokens == "none" else args.budget_tokens}
    )
    try:
        settings = EvolutionSettings(
            proposers=proposers,
            proposer_config={"llm": llm},
            budget=Budget(evaluations=args.budget_evals, wall_s=args.budget_seconds, **tokens),
            seed=args.seed,
            telemetry=args.telemetry,
            executor=args.executor,
            ray_address=args.ray_address,
            **workers,
        )
    except SettingsError as exc:
        print(f"aina evolve: {exc}", file=sys.stderr)
        return 2

    report = reason_about_file(args.telemetry, specs=repo / args.specs, variants=repo / "kernels" / "variants")
    say(f"reasoner: {report.windows_read} windows, {len(report.issues)} refused, {len(report.hypotheses)} hypotheses")
    hyps = report.hypotheses
    if args.hypothesis:
        hyps = [h for h in hyps if h.id == args.hypothesis]
        if not hyps:
            print(f"aina evolve: no hypothesis {args.hypothesis!r} in this telemetry", file=sys.stderr)
            return 2
    shown = _Shown(say, args.budget_evals, quiet=args.json)
    try:
        done = pipeline.evolve(
            repo,
            hyps,
            settings,
            specs_dir=args.specs,
            base=forge.head_commit(repo),
            resume=not args.fresh,
            progress=shown,
        )
    except pipeline.EvolveError as exc:
        print(f"aina evolve: {exc}", file=sys.stderr)
        return 1
    except ChangeError as exc:
        print(f"aina evolve: the winner cannot become a change: {exc}", file=sys.stderr)
        return 1
    except ExecutorError as exc:  # the Ray cluster cannot be reached or used: say which and why
        shown.close()
        print(f"aina evolve: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # a configuration error (e.g. the LLM's model or key): say what to fix
        shown.close()
        print(f"aina evolve: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        shown.close()
        print("aina evolve: interrupted; run the same command again to resume from the checkpoint", file=sys.stderr)
        return 130
    h = done.plan.hypothesis
    change = done.change
    # a proposer the user asked for that never produced a candidate: whatever else was found,
    # the run did not do what it was asked, and a 0 would hide it (exit 2, after the output)
    silent = done.silent_proposers
    status = 2 if silent else 0
    if change is None:
        say("no candidate beat the baseline by more than the noise margin: no change written")
        if args.json:
            print(json.dumps({"hypothesis": h.id, "winner": None, "record": done.record.to_json()}, default=str))
        _say_silent(done, silent)
        return status
    if done.problems and not args.no_forge:
        print(
            "aina evolve: the change's provenance does not verify, so it is not published:\n  "
            + "\n  ".join(done.problems),
            file=sys.stderr,
        )
        return 1
    for problem in done.problems:
        say(f"  provenance: {problem}")
    if args.no_forge:
        out = {"hypothesis": h.id, "change": change.to_json()}
    else:
        out = {"hypothesis": h.id} | forge.open_pr(repo, change)
    if args.json:
        print(json.dumps(out, default=str, indent=2))
    else:
        print()
        print(change.body)
        print()
        print(out.get("message") or f"branch {change.branch} (not committed: --no-forge)")
    _say_silent(done, silent)
    return status


def _say_silent(done, silent: list[str]) -> None:
    for name in silent:
        print(
            f"aina evolve: proposer {name} never produced a candidate ({done.silent_because(name)}); "
            "see the record's proposer_failures, fix its configuration and run again",
            file=sys.stderr,
        )


class _Shown:
    """The loop's progress on the terminal: the plan, a bar per candidate, the table."""

    def __init__(self, say, total: int, quiet: bool):
        self.say, self.total, self.quiet, self.bar = say, total, quiet, None

    def running_on(self, executor) -> None:
        if executor.name != "local":
            self.say(f"executor: {executor.describe()}")

    def planned(self, plan) -> None:
        h = plan.hypothesis
        self.say(f"hypothesis {h.id} ({h.kind}, {h.kernel}): {h.title}")
        for note in plan.notes:
            self.say(f"  note: {note}")
        if not self.quiet:
            from tqdm import tqdm  # lazy: only a search on a terminal draws a bar

            self.bar = tqdm(total=self.total, unit="candidate", desc="search", file=sys.stderr)

    def evaluated(self, attempt, done: int, total: int) -> None:
        if self.bar is not None:
            v = attempt.verdict
            self.bar.set_postfix_str(
                f"{attempt.candidate.describe()[:40]}{_where(v)}: "
                + (f"{v.speedup:.3g}x ref" if v.passed else f"{v.reason}")
            )
            self.bar.update(1)

    def searched(self, record) -> None:
        self.close()
        _table(record, self.say)

    def confirming(self, challengers, rounds: int) -> None:
        self.close()
        self.say(
            f"timing the baseline and the best {len(challengers)} again, side by side ({rounds} rounds, one at a time) ..."
        )

    def measuring(self, change) -> None:
        self.say("measuring the coverage of the new variant by its generated tests ...")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _where(v) -> str:
    """Where a verdict was made, for the progress line: the node that evaluated it (on a
    cluster), and whether its sandboxes were forked from a warm template or started cold
    (the verdict's ``sandbox.start``; why a cold one was is in the record)."""
    parts = [f"@ {v.ran_on.get('node_ip')}"] if v.ran_on else []
    start = str((v.sandbox or {}).get("start", ""))
    if start.startswith(("warm", "cold")):
        parts.append(start[:4])
    return "".join(f" {p}" for p in parts)


def _table(record, say) -> None:
    base = record.baseline.verdict.score if record.baseline and record.baseline.verdict.passed else None
    sbs = record.side_by_side or {}
    together = sbs.get("speedups") or {}
    say("")
    say(
        f"{'candidate':<14} {'proposer':<12} {'config / source':<48} {'result':<26} {'vs baseline':>11} "
        f"{'side by side':>12}"
    )
    for a in record.attempts:
        v = a.verdict
        result = f"passed, {v.speedup:.3g}x ref" if v.passed else f"{v.failed_stage}: {v.reason}"
        rel = f"{v.score / base:.3f}x" if v.passed and base else "-"
        cid = a.candidate.id
        again = f"{together[cid]:.3f}x" if cid in together else ("out" if cid in (sbs.get("failed") or {}) else "")
        mark = " *" if cid == record.winner else ""
        say(
            f"{cid:<14} {a.candidate.proposer:<12} {a.candidate.describe()[:48]:<48} {result[:26]:<26} "
            f"{rel:>11} {again:>12}{mark}"
        )
    if sbs:
        say(
            f"side by side: the baseline and the best {len(sbs.get('sides') or [1]) - 1} timed again after "
            f"the search, {sbs.get('rounds')} rounds in alternating order, one at a time, {sbs.get('wall_s', 0):.0f} s; "
            + (sbs.get("error") or "the winner (*) is decided there")
        )
        for cid, why in (sbs.get("failed") or {}).items():
            say(f"  out of the side-by-side timing: {cid}: {why}")
        for cid, why in (sbs.get("retried") or {}).items():
            say(f"  one session discarded and run again: {cid}: {why}")
    if record.device == "cpu":
        cpu = any("CPU time" in (t.get("clock") or "") for a in record.attempts for t in a.verdict.timings)
        clock = "the sandbox's CPU time per call" if cpu else "parent wall clock"
        say(f"timings: Triton's interpreter on a CPU, {clock}: relative figures only, not GPU evidence")
