"""The README's benchmark table: merge bench/run.py result files (a later file's rows replace an
earlier one's for the same benchmark) and print one Markdown table with each file's conditions.

    python bench/markdown.py bench/results/run-A.json [bench/results/run-B.json ...]
"""
from __future__ import annotations

import json
import sys


def fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    a = abs(v)
    return f"{v:,.0f}" if a >= 100 else f"{v:.3g}" if a >= 0.01 else f"{v:.2g}"


def main(paths: list[str]) -> None:
    rows: dict[str, list[dict]] = {}
    source: dict[str, int] = {}  # benchmark → the file its rows come from
    runs = []
    for i, p in enumerate(paths):
        doc = json.load(open(p, encoding="utf-8"))
        m = doc["meta"]
        names = list(dict.fromkeys(r["bench"] for r in doc["rows"]))  # in run order
        got = {n: [r for r in doc["rows"] if r["bench"] == n] for n in names}
        for n, rs in got.items():
            if all(r.get("status") == "error" for r in rs):
                continue  # a failed benchmark does not replace an earlier result
            rows[n] = rs
            source[n] = i
        c = m.get("contention", {})
        probe = ", ".join(f"{k} {v['slowdown']:.1f}×" for k, v in c.items() if v)
        runs.append((m, probe))
    print("| benchmark | case | ours | peer | ours vs peer | unit | peer / notes |")
    print("|---|---|---:|---:|---|---|---|")
    for n in rows:
        for r in rows[n]:
            note = "; ".join(x for x in (r.get("peer_name") and f"peer: {r['peer_name']}", r.get("notes")) if x)
            print(f"| {r['bench']} | {r['case']} | {fmt(r.get('ours'))} | {fmt(r.get('peer'))} | {r.get('vs_peer') or ''} "
                  f"| {r.get('unit', '')} | {note.replace('|', '/')} |")
    print()
    for i, (m, probe) in enumerate(runs):
        used = [n for n in rows if source[n] == i]
        if used:
            print(f"- {', '.join(used)}: run of {m['date'][:16]}, {m['cpu']}, {m['cores']} cores, "
                  f"{'CUDA ' + m['cuda'] if m.get('cuda') else 'CPU only'}, torch {m['versions']['torch']}, "
                  f"{m['opts']['threads']} threads" + (f"; 2-vs-1-thread contention probe {probe}" if probe else ""))


if __name__ == "__main__":
    main(sys.argv[1:])
