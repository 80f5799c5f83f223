#!/usr/bin/env bash
# Collect what people said on a pull request into the JSON `aina gate --approvals` reads:
#   approvals: "/aina approve <digest>" in a comment, a review or a review comment, and labels
#              "aina-approve:<digest>" still on the pull request; each with its author's
#              permission on the repository (only write, maintain and admin count);
#   reviews:   each person's latest review state, with their permission.
# Usage: aina-approvals.sh OWNER/REPO PR_NUMBER OUT.json   (GH_TOKEN: a token that may read the PR)
set -euo pipefail
repo=$1 pr=$2 out=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

{
  gh api --paginate "repos/$repo/issues/$pr/comments" --jq '.[] | {by: .user.login, body: (.body // ""), source: "comment"}'
  gh api --paginate "repos/$repo/pulls/$pr/reviews" --jq '.[] | {by: .user.login, body: (.body // ""), source: "review"}'
  gh api --paginate "repos/$repo/pulls/$pr/comments" --jq '.[] | {by: .user.login, body: (.body // ""), source: "review comment"}'
} | jq -c '. as $c | ($c.body | [scan("/aina approve (?:sha256:)?([0-9a-f]{16,64})")[0]] | unique[]) | {digest: ., by: $c.by, source: $c.source}' \
  > "$tmp/named.jsonl"

gh api "repos/$repo/issues/$pr/labels" --jq '[.[].name]' > "$tmp/labels.json"
gh api --paginate "repos/$repo/issues/$pr/events" \
  --jq '.[] | select(.event == "labeled" and (.label.name | startswith("aina-approve:"))) | {label: .label.name, by: .actor.login}' \
  | jq -c --slurpfile now "$tmp/labels.json" 'select(.label as $l | $now[0] | index($l)) | {digest: (.label | ltrimstr("aina-approve:") | ltrimstr("sha256:")), by, source: "label"}' \
  >> "$tmp/named.jsonl"

gh api --paginate "repos/$repo/pulls/$pr/reviews" --jq '.[] | {by: .user.login, state}' \
  | jq -s 'group_by(.by) | map(last)' > "$tmp/reviews.json"

# every person named, with their permission ("none" when it cannot be read: then nothing counts)
jq -r '.by' "$tmp/named.jsonl" > "$tmp/people"
jq -r '.[].by' "$tmp/reviews.json" >> "$tmp/people"
echo '{}' > "$tmp/perms.json"
sort -u "$tmp/people" | while read -r login; do
  [ -n "$login" ] || continue
  perm=$(gh api "repos/$repo/collaborators/$login/permission" --jq .permission 2>/dev/null || echo none)
  jq --arg l "$login" --arg p "$perm" '. + {($l): $p}' "$tmp/perms.json" > "$tmp/perms.next" && mv "$tmp/perms.next" "$tmp/perms.json"
done

jq -n --slurpfile named <(jq -s . "$tmp/named.jsonl") --slurpfile reviews "$tmp/reviews.json" \
  --slurpfile perms "$tmp/perms.json" '
  {approvals: [$named[0][] | . + {permission: ($perms[0][.by] // "none")}],
   reviews: [$reviews[0][] | . + {permission: ($perms[0][.by] // "none")}]}' > "$out"
echo "approvals: $(jq '.approvals | length' "$out"), reviews: $(jq '.reviews | length' "$out") -> $out"
