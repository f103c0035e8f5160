"""Prints what the Partner Central emulator holds.

usage: show_state.py EMULATOR_URL SNAPSHOT_FILE
The first call (no snapshot yet) prints every opportunity; later calls print only what changed since
the snapshot, then the call counters. The snapshot is rewritten each time.
"""
import json
import os
import sys
import urllib.request


def short(identifier):
    # Marketplace ARNs are long: their last path segment names them well enough here.
    return identifier.rsplit("/", 1)[-1] if identifier.startswith("arn:") else identifier


def holdings(state):
    return {
        f"{o['Catalog']} {o['Id']}": {t: [short(i) for i in ids] for t, ids in o["RelatedEntityIdentifiers"].items() if ids}
        for o in state["Opportunities"]
    }


def describe(held):
    return "; ".join(f"{t} {', '.join(ids)}" for t, ids in held.items()) or "nothing"


url, snapshot = sys.argv[1], sys.argv[2]
with urllib.request.urlopen(url + "/_emulator/state") as response:
    state = json.load(response)
now = holdings(state)
if os.path.exists(snapshot):
    with open(snapshot) as f:
        before = json.load(f)
    changed = [key for key in now if now[key] != before.get(key)]
    for key in changed:
        was = before.get(key, {})
        removed = {t: [i for i in ids if i not in now[key].get(t, [])] for t, ids in was.items()}
        added = {t: [i for i in ids if i not in was.get(t, [])] for t, ids in now[key].items()}
        parts = [f"removed {t} {', '.join(ids)}" for t, ids in removed.items() if ids]
        parts += [f"added {t} {', '.join(ids)}" for t, ids in added.items() if ids]
        print(f"      {key:<17} {'; '.join(parts)}; now holds {describe(now[key])}")
    if not changed:
        print("      no opportunity changed")
else:
    for key, held in now.items():
        print(f"      {key:<17} {describe(held)}")
with open(snapshot, "w") as f:
    json.dump(now, f)
ops = state["Operations"]
calls = ", ".join(f"{name} {c['Calls']} ({c['Throttled']} throttled)" for name, c in sorted(ops.items()))
print(f"      calls so far: {calls or 'none'}")
