"""The LLM proposer: kernel variants written by a model, through litellm.

Any litellm model string works (``openai/gpt-4o``, ``anthropic/claude-...``), and so does a
local OpenAI-compatible server (vLLM, llama.cpp, Ollama): ``model="openai/<name>"`` with
``api_base="http://host:port/v1"``. Each proposal is one conversation: the prompt of
:mod:`.prompts` (the kernel's source, its spec, the hypothesis with its evidence, the
tunables and the scored history), then, while the answer cannot be used, a short corrective
message, up to ``max_attempts`` answers. Answers are checked without running them
(``compile`` and an ``ast`` look for the function and a ``@triton.jit`` kernel); whether the
code is *right* is the evaluator's job.

Every HTTP call is recorded in the candidate's ``meta["attempts"]`` with its tokens and cost;
a proposal that yields no candidate (malformed answers to the end, the provider down, the
token budget spent) is recorded in :attr:`LLMProposer.failures` for the search record.
Provider errors are retried with backoff and recorded, never raised; only a configuration
error (:class:`LLMConfigError`) is, and :meth:`LLMProposer.preflight` finds one before a
search starts (a missing key, an unknown model, a server nothing listens on). A model that
answers it has no further ideas, or ``max_failed_proposals`` proposals in a row without a
candidate, sets :attr:`LLMProposer.exhausted`: it is not asked again.

The API key is read from the variable named by ``api_key_env`` at each call, handed to
litellm, and scrubbed from anything recorded; it is never logged, prompted or stored.
"""

from __future__ import annotations

import ast
import email.utils
import hashlib
import logging
import os
import re
import sys
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

import pytest_aina.changer.proposers.prompts as prompts
from pytest_aina.changer.model import Candidate, digest

log = logging.getLogger(__name__)

#: Tokens assumed per character when a prompt must be sized before it is sent: no tokenizer
#: is loaded (it would be a download); code and English average ~4 characters a token.
CHARS_PER_TOKEN = 4
#: Longest provider error text kept in a record (characters).
DETAIL_CHARS = 300
#: What a local server that wants no key receives as one (litellm's OpenAI client needs some).
PLACEHOLDER_KEY = "sk-no-key-required"

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_REFUSAL = re.compile(
    r"\b(I can(?:no|')t|I'm sorry|I am sorry|I am unable|I'm unable|"
    r"I won't|I will not|cannot (?:help|assist))\b",
    re.I,
)
_PYTHON_TAGS = {"python", "py", "python3"}
#: An answer that says the model has nothing more to try (the prompt asks for "No further
#: ideas."): re-asking it only buys the same answer, so the proposer stops there.
_GAVE_UP = re.compile(
    r"\b(no (?:further|more|other|new) (?:ideas?|variants?|improvements?|suggestions?)|"
    r"nothing (?:further|more|else|new) to (?:propose|try|suggest))\b",
    re.I,
)


class LLMConfigError(ValueError):
    """The proposer is configured wrongly (unknown provider, missing key, bad option): the
    one error it raises, because retrying cannot fix it."""


@dataclass
class _Outcome:
    """One proposal slot: its candidate or its failure, and what it cost."""

    candidate: Candidate | None = None
    failure: dict | None = None
    tokens: int = 0
    stop: bool = False  # the round should end here (provider down, budget spent)


@dataclass
class _Parsed:
    source: str | None = None
    summary: str = ""
    reason: str | None = None  # why the answer is unusable (prompts.CORRECTIONS key)
    detail: str = ""


class LLMProposer:
    """Proposes kernel modules written by an LLM; see the module docstring."""

    def __init__(
        self,
        model: str,
        api_base: str | None = None,
        api_key_env: str | None = None,
        max_attempts: int = 3,
        temperature: float = 0.2,
        max_tokens: int = 4096,
        timeout_s: float = 120,
        provider_retries: int = 3,
        backoff_s: float = 1.0,
        max_wait_s: float = 60.0,
        history_limit: int = 20,
        max_failed_proposals: int = 2,
        completion_kwargs: dict | None = None,
    ):
        _require(
            isinstance(model, str) and model.strip(),
            "model",
            model,
            "a litellm model string such as 'openai/gpt-4o' or 'openai/<name>' with api_base",
        )
        _require(
            api_base is None
            or (isinstance(api_base, str) and urllib.parse.urlsplit(api_base).scheme in ("http", "https")),
            "api_base",
            api_base,
            "an http(s) URL such as 'http://127.0.0.1:8000/v1'",
        )
        _require(
            api_key_env is None or (isinstance(api_key_env, str) and _ENV_NAME.match(api_key_env)),
            "api_key_env",
            api_key_env,
            "the *name* of an environment variable, e.g. 'OPENAI_API_KEY'",
        )
        _require(_is_int(max_attempts) and max_attempts >= 1, "max_attempts", max_attempts, "an integer >= 1")
        _require(_is_num(temperature) and 0 <= temperature <= 2, "temperature", temperature, "a number in [0, 2]")
        _require(_is_int(max_tokens) and max_tokens >= 1, "max_tokens", max_tokens, "an integer >= 1")
        _require(_is_num(timeout_s) and timeout_s > 0, "timeout_s", timeout_s, "a number of seconds > 0")
        _require(
            _is_int(provider_retries) and provider_retries >= 0, "provider_retries", provider_retries, "an integer >= 0"
        )
        _require(_is_num(backoff_s) and backoff_s >= 0, "backoff_s", backoff_s, "a number of seconds >= 0")
        _require(_is_num(max_wait_s) and max_wait_s >= 0, "max_wait_s", max_wait_s, "a number of seconds >= 0")
        _require(_is_int(history_limit) and history_limit >= 1, "history_limit", history_limit, "an integer >= 1")
        _require(
            _is_int(max_failed_proposals) and max_failed_proposals >= 1,
            "max_failed_proposals",
            max_failed_proposals,
            "an integer >= 1",
        )
        reserved = {
            "model",
            "messages",
            "api_key",
            "api_base",
            "base_url",
            "max_retries",
            "num_retries",
            "timeout",
            "max_tokens",
            "temperature",
            "stream",
            "n",
        }
        _require(
            completion_kwargs is None
            or (isinstance(completion_kwargs, dict) and not reserved & set(completion_kwargs)),
            "completion_kwargs",
            completion_kwargs and sorted(completion_kwargs),
            f"a dict of extra litellm.completion arguments, none of {sorted(reserved)}",
        )
        self.model = model.strip()
        self.name = f"llm:{self.model}"
        self.api_base = api_base
        self.api_key_env = api_key_env
        self.max_attempts = max_attempts
        self.temperature = float(temperature)
        self.max_tokens = max_tokens
        self.timeout_s = float(timeout_s)
        self.provider_retries = provider_retries
        self.backoff_s = float(backoff_s)
        self.max_wait_s = float(max_wait_s)
        self.history_limit = history_limit
        self.max_failed_proposals = max_failed_proposals
        self.completion_kwargs = dict(completion_kwargs or {})
        #: Proposals that produced no candidate, in order: dicts the search copies into its record.
        self.failures: list[dict] = []
        #: Tokens spent by every call so far, candidates and failures alike.
        self.tokens_used = 0
        #: Dollars spent so far on priced models (None once any call was unpriced).
        self.cost_usd: float | None = 0.0
        self.rounds = 0
        #: True once the model said it has no further ideas, or ``max_failed_proposals``
        #: proposals in a row gave no candidate: it is not asked again (the search skips it).
        self.exhausted = False
        self._failed_in_row = 0
        self._checked = False
        self._placeholder_key = False

    def __repr__(self) -> str:
        return (
            f"LLMProposer(model={self.model!r}, api_base={public_url(self.api_base)!r}, "
            f"api_key_env={self.api_key_env!r})"
        )

    # -- configuration ------------------------------------------------------------------
    def check(self) -> None:
        """Fail early, before any request, on what no retry can fix: a model string litellm
        cannot route, or a missing key. Called by the first :meth:`propose`; a search may
        call it up front."""
        if self._checked:
            return
        litellm = _litellm()
        try:
            litellm.get_llm_provider(self.model, api_base=self.api_base)
        except Exception as e:  # litellm raises BadRequestError for an unknown provider
            raise LLMConfigError(
                f"LLM proposer: litellm cannot route model {self.model!r} (config key 'model'): "
                f"{_first_line(e)}. Use '<provider>/<model>', e.g. 'openai/gpt-4o', "
                f"'anthropic/claude-sonnet-4-5', or 'openai/<name>' with api_base for a local "
                f"OpenAI-compatible server."
            ) from None
        if self.api_key_env is None:
            env = litellm.validate_environment(self.model, api_base=self.api_base)
            missing = [k for k in env.get("missing_keys", []) if k.endswith("_KEY")]
            if missing and self.api_base is None:
                raise LLMConfigError(
                    f"LLM proposer: model {self.model!r} needs {' or '.join(missing)} in the "
                    f"environment; set it, or name the variable that holds the key with "
                    f"api_key_env."
                )
            # A local server (api_base given) usually wants no key, but litellm's OpenAI
            # client refuses to send a request without one.
            self._placeholder_key = bool(missing)
        else:
            self._api_key()
        self._checked = True

    def preflight(self) -> None:
        """Before a search spends anything on evaluations: the configuration (:meth:`check`)
        and one short request, so that a server nothing listens on, a model the server does
        not know (its 404) or a rejected key stop the run at once, with what to fix, instead
        of surfacing as failed proposals after the baseline's evaluation. Costs a few tokens,
        counted in :attr:`tokens_used`. Raises :class:`LLMConfigError`."""
        self.check()
        key = self._api_key()
        messages = [{"role": "user", "content": "Reply with the single word OK."}]
        where = public_url(self.api_base) or f"the provider of {self.model!r}"
        # a refused connection is not retried here: nothing listening is not a passing state
        response, records = self._call(messages, 8, key, 0, retries=1, retry_connection=False)
        self._spend(sum(r["prompt_tokens"] + r["completion_tokens"] for r in records), _cost(records)[0])
        if response is not None:
            return
        last = records[-1]
        if last["reason"] == "connection_error":
            raise LLMConfigError(
                f"LLM proposer: nothing answers at {where} ({last['detail']}). Start the "
                f"OpenAI-compatible server, or fix --api-base (config key 'api_base'); the search was "
                f"not started."
            )
        raise LLMConfigError(
            f"LLM proposer: {where} did not answer a one-line test request ({last['reason']}, "
            f"status {last['status']}: {last['detail']}). Check that the server is up and serves "
            f"{self.model!r} (--model, --api-base); the search was not started."
        )

    def _api_key(self) -> str | None:
        """The key, read now (so a rotated key is picked up), never stored on self."""
        if self.api_key_env is None:
            return PLACEHOLDER_KEY if self._placeholder_key else None
        key = os.environ.get(self.api_key_env, "")
        if not key:
            raise LLMConfigError(
                f"LLM proposer: the environment variable {self.api_key_env} "
                f"(config key 'api_key_env') is not set or is empty."
            )
        return key

    # -- proposing ----------------------------------------------------------------------
    def propose(self, ctx: Any, n: int) -> list[Candidate]:
        """Up to ``n`` candidates, one conversation each, proposed one after another so each
        prompt lists the ideas already proposed in this round."""
        self.check()
        if self.exhausted:
            return []
        key = self._api_key()
        self.rounds += 1
        known = {_source_digest(c.source) for c, _ in ctx.history if c.source}
        proposed: list[str] = []
        out: list[Candidate] = []
        budget = ctx.token_budget
        used = 0
        for slot in range(n):
            remaining = None if budget is None else budget - used
            if remaining is not None and remaining <= 0:
                self.failures.append(
                    self._failure(slot, "token_budget_exhausted", f"{budget} tokens allowed, {used} used", [], None)
                )
                break
            result = self._propose_one(ctx, slot, proposed, known, key, remaining)
            used += result.tokens
            if result.candidate is not None:
                self._failed_in_row = 0
                out.append(result.candidate)
                proposed.append(result.candidate.meta["summary"] or f"candidate {result.candidate.id}")
                known.add(_source_digest(result.candidate.source))
            else:
                self.failures.append(result.failure)
                self._failed_in_row += 1
                if result.failure["reason"] == "gave_up" or self._failed_in_row >= self.max_failed_proposals:
                    self.exhausted = True
                    log.warning(
                        "%s: not asked again (%s)",
                        self.name,
                        "it has no further ideas"
                        if result.failure["reason"] == "gave_up"
                        else f"{self._failed_in_row} proposals in a row gave no candidate",
                    )
            if result.stop or self.exhausted:
                break
        return out

    def _propose_one(self, ctx, slot, proposed, known, key, remaining) -> _Outcome:
        task = prompts.render_task(ctx, proposed=proposed, history_limit=self.history_limit)
        if key and key != PLACEHOLDER_KEY and key in task:  # a context is not meant to hold one; be sure
            task = task.replace(key, "[redacted]")
        messages = [{"role": "system", "content": prompts.SYSTEM}, {"role": "user", "content": task}]
        prompt_digest = digest(messages)
        seed = int(hashlib.sha256(f"{ctx.seed}:{self.rounds}:{slot}".encode()).hexdigest()[:8], 16)
        reference = prompts.top_level_function(ctx.kernel_source, ctx.function)
        calls: list[dict] = []
        tokens = 0
        answers = 0
        while answers < self.max_attempts:
            max_tokens = self.max_tokens
            if remaining is not None:
                estimate = _estimate_tokens(messages)
                left = remaining - tokens
                if left <= estimate:
                    return _Outcome(
                        failure=self._failure(
                            slot,
                            "token_budget_exhausted",
                            f"{left} tokens left, the prompt alone is about {estimate}",
                            calls,
                            prompt_digest,
                        ),
                        tokens=tokens,
                        stop=True,
                    )
                max_tokens = min(max_tokens, left - estimate)
            response, record = self._call(messages, max_tokens, key, seed)
            calls.extend(record)
            tokens += sum(c["prompt_tokens"] + c["completion_tokens"] for c in record)
            if response is None:
                last = record[-1]
                return _Outcome(
                    failure=self._failure(
                        slot, "provider_error", f"{last['reason']}: {last['detail']}", calls, prompt_digest
                    ),
                    tokens=tokens,
                    stop=True,
                )
            answers += 1
            text, finish = _message_text(response)
            parsed = _parse_answer(text, finish, ctx.function, reference, known)
            call = calls[-1]
            if parsed.source is not None:
                call["outcome"] = "ok"
                meta = self._meta(calls, prompt_digest, parsed.summary, seed, text)
                cand = Candidate(
                    kernel=ctx.kernel, proposer=self.name, source=parsed.source, function=ctx.function, meta=meta
                )
                log.info("%s: candidate %s after %d answer(s), %d tokens", self.name, cand.id, answers, tokens)
                return _Outcome(candidate=cand, tokens=tokens)
            call.update(outcome="malformed", reason=parsed.reason, detail=_excerpt(parsed.detail, key))
            if parsed.reason == "gave_up":  # asking again would only buy the same answer
                return _Outcome(
                    failure=self._failure(slot, "gave_up", _excerpt(text, key), calls, prompt_digest),
                    tokens=tokens,
                    stop=True,
                )
            log.info("%s: unusable answer %d/%d (%s)", self.name, answers, self.max_attempts, parsed.reason)
            messages = messages + [
                {"role": "assistant", "content": text[:20_000]},
                {"role": "user", "content": prompts.follow_up(parsed.reason, parsed.detail, ctx)},
            ]
        reasons = ", ".join(c["reason"] for c in calls if c["outcome"] == "malformed")
        return _Outcome(
            failure=self._failure(
                slot, "malformed_answers", f"{answers} unusable answer(s): {reasons}", calls, prompt_digest
            ),
            tokens=tokens,
        )

    def _call(
        self,
        messages: list[dict],
        max_tokens: int,
        key: str | None,
        seed: int,
        *,
        retries: int | None = None,
        retry_connection: bool = True,
    ):
        """One answer from the provider, retrying what a retry can fix (up to ``retries``,
        default ``provider_retries``): (response or None, a record per HTTP call)."""
        retries = self.provider_retries if retries is None else retries
        litellm = _litellm()
        records: list[dict] = []
        kwargs = dict(
            model=self.model,
            messages=messages,
            temperature=self.temperature,
            max_tokens=max_tokens,
            timeout=self.timeout_s,
            seed=seed,
            # our retries, recorded, instead of the client's silent ones
            max_retries=0,
            num_retries=0,
            # a provider that lacks an optional parameter (seed, temperature) drops it
            drop_params=True,
            **self.completion_kwargs,
        )
        if self.api_base is not None:
            kwargs["api_base"] = self.api_base
        if key is not None:
            kwargs["api_key"] = key
        for attempt in range(retries + 1):
            start = time.perf_counter()
            try:
                response = litellm.completion(**kwargs)
            except Exception as e:
                wall = time.perf_counter() - start
                reason, retryable, retry_after = _classify(litellm, e)
                if reason == "configuration":
                    raise LLMConfigError(
                        f"LLM proposer: {self.model!r} at {public_url(self.api_base) or 'the provider'} "
                        f"refused the request ({_status(e)}): {_excerpt(_first_line(e), key)}. Check "
                        f"--model / 'model', --api-base / 'api_base' and the key in "
                        f"{self.api_key_env or 'the provider default variable'} (--api-key-env)."
                    ) from None
                root = _never_connected(e) if reason == "connection_error" else None
                record = {
                    "outcome": "provider_error",
                    "reason": reason,
                    "status": None if reason == "connection_error" else _status(e),  # no HTTP answer
                    "detail": _excerpt(_first_line(root) if root is not None else _first_line(e), key),
                    "prompt_tokens": 0,
                    "completion_tokens": 0,
                    "cost_usd": 0.0,
                    "wall_s": round(wall, 4),
                    "waited_s": 0.0,
                }
                records.append(record)
                log.warning(
                    "%s: provider error %s (%s), call %d of %d",
                    self.name,
                    reason,
                    record["status"],
                    attempt + 1,
                    retries + 1,
                )
                if not retryable or attempt == retries or (reason == "connection_error" and not retry_connection):
                    return None, records
                wait = self.backoff_s * 2**attempt
                if retry_after is not None:
                    if retry_after > self.max_wait_s:
                        record["detail"] += f" (Retry-After {retry_after:g}s exceeds max_wait_s {self.max_wait_s:g}s)"
                        return None, records
                    wait = max(wait, retry_after)
                wait = min(wait, self.max_wait_s)
                record["waited_s"] = round(wait, 3)
                time.sleep(wait)
                continue
            wall = time.perf_counter() - start
            records.append(self._usage(litellm, response, messages, wall))
            return response, records
        return None, records  # unreachable: the loop returns on its last attempt

    def _usage(self, litellm, response, messages, wall: float) -> dict:
        usage = getattr(response, "usage", None)
        prompt_tokens = getattr(usage, "prompt_tokens", None)
        completion_tokens = getattr(usage, "completion_tokens", None)
        record = {
            "outcome": "answer",
            "reason": None,
            "status": 200,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "finish_reason": _message_text(response)[1],
            "wall_s": round(wall, 4),
            "waited_s": 0.0,
        }
        if prompt_tokens is None or completion_tokens is None:
            # a server without usage accounting: count by estimate so the budget still binds
            record["prompt_tokens"] = _estimate_tokens(messages)
            record["completion_tokens"] = len(_message_text(response)[0]) // CHARS_PER_TOKEN + 1
            record["tokens_estimated"] = True
        try:
            record["cost_usd"] = float(litellm.completion_cost(completion_response=response))
        except Exception:  # litellm raises for a model missing from its price list
            record["cost_usd"] = None
        return record

    def _meta(self, calls: list[dict], prompt_digest: str, summary: str, seed: int, answer: str) -> dict:
        tokens = _tokens(calls)
        cost, note = _cost(calls)
        self._spend(tokens["total"], cost)
        return {
            "model": self.model,
            "api_base": public_url(self.api_base),
            "prompt_digest": prompt_digest,
            "template_digest": prompts.TEMPLATE_DIGEST,
            "answer_digest": hashlib.sha256(answer.encode()).hexdigest(),
            "summary": summary,
            "temperature": self.temperature,
            "seed": seed,
            "attempts": calls,
            "tokens": tokens,
            # flat copies: what the search adds up against its token budget
            "prompt_tokens": tokens["prompt"],
            "completion_tokens": tokens["completion"],
            "cost_usd": cost,
            "cost_note": note,
        }

    def _failure(self, slot: int, reason: str, detail: str, calls: list[dict], prompt_digest: str | None) -> dict:
        tokens = _tokens(calls)
        cost, note = _cost(calls)
        self._spend(tokens["total"], cost)
        log.warning("%s: no candidate for slot %d of round %d: %s", self.name, slot, self.rounds, reason)
        return {
            "proposer": self.name,
            "model": self.model,
            "round": self.rounds,
            "slot": slot,
            "reason": reason,
            "detail": detail,
            "prompt_digest": prompt_digest,
            "template_digest": prompts.TEMPLATE_DIGEST,
            "attempts": calls,
            "tokens": tokens,
            "cost_usd": cost,
            "cost_note": note,
        }

    def _spend(self, tokens: int, cost: float | None) -> None:
        self.tokens_used += tokens
        self.cost_usd = None if self.cost_usd is None or cost is None else self.cost_usd + cost


# -- litellm, configured once -----------------------------------------------------------


def _litellm():
    """litellm, imported on first use with its network side effects off: no download of the
    model price list (the copy bundled with the package is used) and no remote catalogues or
    tokenizers; the proxy's usage telemetry is opt-in and the SDK path sends none."""
    if "litellm" not in sys.modules:
        os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
        os.environ["LITELLM_OFFLINE_MODE"] = "true"
    import litellm

    litellm.telemetry = False  # honoured by older litellm releases, harmless in newer
    litellm.suppress_debug_info = True  # no "Give Feedback" banners on stdout for each error
    return litellm


def _classify(litellm, e: Exception) -> tuple[str, bool, float | None]:
    """(reason, retryable, Retry-After seconds) for an exception from litellm.completion."""
    status = _status(e)
    if isinstance(e, getattr(litellm, "Timeout", ())) or status == 408:
        return "timeout", True, None
    if isinstance(e, getattr(litellm, "RateLimitError", ())) or status == 429:
        return "rate_limited", True, _retry_after(e)
    if isinstance(
        e,
        (
            getattr(litellm, "AuthenticationError", ()),
            getattr(litellm, "PermissionDeniedError", ()),
            getattr(litellm, "NotFoundError", ()),
        ),
    ) or status in (401, 403, 404):
        return "configuration", False, None
    if isinstance(e, getattr(litellm, "ContextWindowExceededError", ())):
        return "context_window_exceeded", False, None
    if isinstance(e, getattr(litellm, "ContentPolicyViolationError", ())):
        return "content_policy", False, None
    # before the status: litellm reports a connection that never opened as an
    # InternalServerError with status 500, which is not what happened (nothing answered)
    if isinstance(e, getattr(litellm, "APIConnectionError", ())) or _never_connected(e) is not None:
        return "connection_error", True, None
    if isinstance(status, int) and status >= 500:
        return "server_error", True, _retry_after(e)
    if isinstance(status, int) and 400 <= status < 500:
        return "bad_request", False, None
    return "provider_error", False, None


def _never_connected(e: BaseException) -> BaseException | None:
    """The error under ``e`` that says no connection was made (refused, no route, unknown
    host), or None: litellm and openai wrap httpx's ConnectError, which wraps the OSError."""
    seen = 0
    cause: BaseException | None = e
    while cause is not None and seen < 10:
        if isinstance(cause, ConnectionError) or type(cause).__name__ == "ConnectError":
            while (cause.__cause__ or cause.__context__) is not None and seen < 10:
                cause, seen = cause.__cause__ or cause.__context__, seen + 1  # the innermost says most
            return cause
        cause, seen = cause.__cause__ or cause.__context__, seen + 1
    return None


def _status(e: Exception) -> int | None:
    status = getattr(e, "status_code", None)
    return status if isinstance(status, int) else None


def _retry_after(e: Exception) -> float | None:
    """Seconds the server asked us to wait (``retry-after-ms`` or ``Retry-After``, seconds or
    an HTTP date), or None."""
    headers = None
    response = getattr(e, "response", None)
    if response is not None:
        headers = getattr(response, "headers", None)
    if not headers:
        headers = getattr(e, "litellm_response_headers", None)
    if not headers:
        return None
    try:
        if headers.get("retry-after-ms") is not None:
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            when = email.utils.parsedate_to_datetime(value)
            return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError):
        return None


# -- answers ----------------------------------------------------------------------------


def _message_text(response) -> tuple[str, str | None]:
    try:
        choice = response.choices[0]
    except (AttributeError, IndexError, TypeError):
        return "", None
    message = getattr(choice, "message", None)
    text = getattr(message, "content", None) or ""
    refusal = getattr(message, "refusal", None)
    if not text and refusal:
        text = str(refusal)
    return text, getattr(choice, "finish_reason", None)


def _code_blocks(text: str) -> tuple[list[tuple[str, str]], bool]:
    """Fenced blocks as (language tag, code), and whether one was left open."""
    blocks, lang, lines, open_ = [], "", [], False
    for line in text.splitlines():
        stripped = line.strip()
        if not open_ and stripped.startswith("```"):
            lang, lines, open_ = stripped[3:].strip().split(" ")[0].lower(), [], True
        elif open_ and stripped == "```":
            blocks.append((lang, "\n".join(lines) + "\n"))
            open_ = False
        elif open_:
            lines.append(line)
    return blocks, open_


def _summary(text: str) -> str:
    outside = re.sub(r"```.*?(```|\Z)", "", text, flags=re.S)
    lines = [ln.strip().strip("*_# ").strip() for ln in outside.splitlines() if ln.strip()]
    for ln in lines:
        m = re.match(r"(?i)idea\s*[:*]+\s*(.*)", ln)
        if m:
            return _one_line(m.group(1).strip("*_ ").strip())
    return _one_line(lines[0]) if lines else ""


def _parse_answer(
    text: str, finish: str | None, function: str, reference: ast.FunctionDef | None, known: set[str]
) -> _Parsed:
    """The module in an answer, checked without running it, or why it cannot be used."""
    if not text.strip():
        return _Parsed(reason="empty", detail="no text")
    blocks, left_open = _code_blocks(text)
    python = [code for lang, code in blocks if lang in _PYTHON_TAGS] or [code for lang, code in blocks if not lang]
    if not python:
        if left_open:
            return _Parsed(
                reason="truncated" if finish == "length" else "unterminated_code_block",
                detail=f"finish_reason={finish}",
            )
        if _GAVE_UP.search(text):
            return _Parsed(reason="gave_up", detail=_one_line(text))
        if _REFUSAL.search(text):
            return _Parsed(reason="refusal", detail=_one_line(text))
        return _Parsed(reason="no_code_block", detail=_one_line(text))
    defining = [code for code in python if prompts.top_level_function(code, function) is not None]
    if len(defining) > 1:
        return _Parsed(reason="several_code_blocks", detail=f"{len(defining)} blocks define {function}")
    source = defining[0] if defining else max(python, key=len)
    parsed = _check_module(source, function, reference)
    if parsed.reason is None and _source_digest(source) in known:
        return _Parsed(reason="duplicate", detail=f"source digest {_source_digest(source)[:12]}")
    parsed.summary = _summary(text)
    return parsed


def _check_module(source: str, function: str, reference: ast.FunctionDef | None) -> _Parsed:
    if not source.strip():
        return _Parsed(reason="empty", detail="the code block is empty")
    try:
        # compile, never exec: the text is untrusted and only the sandbox may run it
        compile(source, f"<candidate {function}>", "exec", dont_inherit=True)
        tree = ast.parse(source)
    except SyntaxError as e:
        return _Parsed(reason="syntax_error", detail=f"line {e.lineno}: {e.msg}")
    except (ValueError, RecursionError, MemoryError) as e:
        return _Parsed(reason="syntax_error", detail=f"{type(e).__name__}: {e}")
    defs = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == function]
    if not defs:
        return _Parsed(reason="missing_function", detail=f"no top-level 'def {function}'")
    mismatch = _signature_mismatch(defs[-1], reference)
    if mismatch:
        return _Parsed(reason="signature_mismatch", detail=mismatch)
    if not any(_is_triton_kernel(node) for node in tree.body):
        return _Parsed(reason="no_triton_kernel", detail="no top-level function decorated with triton.jit")
    return _Parsed(source=source)


def _signature_mismatch(fn: ast.FunctionDef, reference: ast.FunctionDef | None) -> str:
    """Empty when ``fn`` can be called exactly as ``reference`` is; else what differs."""
    if reference is None:
        return ""
    want = [a.arg for a in reference.args.posonlyargs + reference.args.args]
    have = [a.arg for a in fn.args.posonlyargs + fn.args.args]
    n_required = len(have) - len(fn.args.defaults)
    if have[: len(want)] != want:
        return f"expected parameters ({', '.join(want)}), got ({', '.join(have)})"
    if n_required > len(want):
        return f"extra parameters without defaults: {', '.join(have[len(want) : n_required])}"
    if any(d is None for d in fn.args.kw_defaults):
        return "keyword-only parameters without defaults"
    return ""


def _is_triton_kernel(node: ast.stmt) -> bool:
    if not isinstance(node, ast.FunctionDef):
        return False
    for dec in node.decorator_list:
        target = dec.func if isinstance(dec, ast.Call) else dec
        if re.fullmatch(r"(triton\.)?jit", ast.unparse(target)):
            return True
    return False


# -- small helpers ----------------------------------------------------------------------


def _require(ok: Any, key: str, value: Any, expected: str) -> None:
    if not ok:
        raise LLMConfigError(f"LLM proposer: config key {key!r} is {value!r}; expected {expected}.")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _source_digest(source: str) -> str:
    normalised = "\n".join(line.rstrip() for line in source.strip().splitlines())
    return hashlib.sha256(normalised.encode()).hexdigest()


def _estimate_tokens(messages: list[dict]) -> int:
    return sum(len(m["content"]) for m in messages) // CHARS_PER_TOKEN + 4 * len(messages)


def _tokens(calls: list[dict]) -> dict:
    p = sum(c["prompt_tokens"] for c in calls)
    c_ = sum(c["completion_tokens"] for c in calls)
    return {"prompt": p, "completion": c_, "total": p + c_}


def _cost(calls: list[dict]) -> tuple[float | None, str | None]:
    costs = [c["cost_usd"] for c in calls]
    if any(c is None for c in costs):
        return None, "unpriced model"
    return sum(costs), None


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _one_line(text: str, limit: int = 200) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= limit else text[:limit] + " ..."


def _excerpt(text: str, secret: str | None) -> str:
    """A short, single-line excerpt with the key removed (a provider may echo it back)."""
    if secret and secret != PLACEHOLDER_KEY:
        text = text.replace(secret, "[redacted]")
    return _one_line(text, DETAIL_CHARS)


def public_url(url: str | None) -> str | None:
    """``url`` without user info, query or fragment: what may go in a record."""
    if url is None:
        return None
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def make(config: dict) -> LLMProposer:
    """The ``llm`` entry of :data:`~pytest_aina.changer.proposers.base.BUILTIN`."""
    return LLMProposer(**config)
