"""Runs scim2-tester's checks against a SCIM server and fails on any check that fails and is not
listed in docs/scim.md's "Conformance exceptions" table.

    python scripts/scim_conformance.py BASE_URL TOKEN DOCS_FILE

A check passes with status SUCCESS, COMPLIANT, ACCEPTABLE or SKIPPED; DEVIATION, ERROR and
CRITICAL fail unless docs/scim.md lists it: a table row `| title | text of its reason | why |`
under the heading "Conformance exceptions" (the check's title, and text its reason contains, so
one row excuses one failure, not every check of that name). An exception that no longer fails is
reported too, so the list stays true.
"""

import re
import sys

from httpx2 import Client
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server

PASSING = {Status.SUCCESS, Status.COMPLIANT, Status.ACCEPTABLE, Status.SKIPPED}


def exceptions(docs: str) -> list[tuple[str, str]]:
    """The (title, reason text) pairs listed under "Conformance exceptions"."""
    listed = []
    inside = False
    for line in open(docs, encoding="utf-8"):
        if line.startswith("#"):
            inside = "conformance exceptions" in line.lower()
            continue
        cells = [cell.strip().strip("`") for cell in line.strip().strip("|").split("|")]
        if not inside or not line.startswith("|") or len(cells) < 3:
            continue
        if set(cells[0]) <= set("- :") or cells[0].lower() == "check":
            continue
        listed.append((cells[0], cells[1]))
    return listed


def excused(allowed: list[tuple[str, str]], title: str, reason: str) -> tuple[str, str] | None:
    """The exception that covers a failing check, if any."""
    for entry in allowed:
        if entry[0] == title and entry[1] in reason:
            return entry
    return None


def main() -> int:
    base, token, docs = sys.argv[1:4]
    allowed = exceptions(docs)
    http = Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    scim = SyncSCIMClient(http)
    scim.discover()
    results = check_server(scim)
    failed, used = [], set()
    for result in results:
        title = result.title or "(untitled)"
        reason = result.reason or ""
        print(f"{result.status.name:10} {title}: {reason}")
        if result.status not in PASSING:
            entry = excused(allowed, title, reason)
            if entry is None:
                failed.append((title, result))
            else:
                used.add(entry)
    print(f"\n{len(results)} checks: {len(failed)} failing, {len(used)} failing as documented")
    for title, result in failed:
        print(f"FAILED (not in docs/scim.md): {title}: {result.reason}\n  data: {result.data!r:.2000}")
    for title, text in allowed:
        if (title, text) not in used:
            print(f"NOTE: docs/scim.md excuses {title!r} ({text!r}), which did not fail: remove it")
    if not results:
        print("FAILED: scim2-tester ran no checks")
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
