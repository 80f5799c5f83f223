"""issue_comment: the slash commands ``/aina rebase|retry|close|merge`` in a comment on a bot PR
(not to be confused with the ``aina`` CLI's commands).

Whether the author may give the command (write access) is asked of GitHub in the job,
not here: the webhook answers without waiting for anyone.
"""

from __future__ import annotations

import re

from github_app.events.payload import as_id, dig, text
from github_app.events.router import Event, Router
from github_app.store import JobSpec

router = Router()
SLASH_COMMAND = re.compile(r"^\s*/aina\s+(rebase|retry|close|merge)\b", re.IGNORECASE | re.MULTILINE)


@router.register("issue_comment", "created")
def slash_command(event: Event, store) -> list[JobSpec]:
    repo, inst = event.repository, event.installation_id
    number = as_id(dig(event.payload, "issue", "number"))
    body = dig(event.payload, "comment", "body")
    login = text(dig(event.payload, "comment", "user", "login"), 100)
    comment_id = as_id(dig(event.payload, "comment", "id"))
    if None in (repo, inst, number, login, comment_id) or not isinstance(body, str):
        return []
    if dig(event.payload, "comment", "user", "type") == "Bot":
        return []  # never obey a bot, ourselves included
    if not isinstance(dig(event.payload, "issue", "pull_request"), dict):
        return []
    match = SLASH_COMMAND.search(body[:10_000])
    if match is None:
        return []
    head_is_ours = store.pull(repo, number) is not None
    if not head_is_ours:
        return []
    return [
        JobSpec(
            "command",
            {
                "repository": repo,
                "installation_id": inst,
                "number": number,
                "command": match.group(1).lower(),
                "user": login,
                "comment_id": comment_id,
            },
            key=f"command:{repo}:{comment_id}",
            repository=repo,
        )
    ]
