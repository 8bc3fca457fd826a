#!/usr/bin/env python3
"""Report of scripts/dev/dicom_corpus.sh: one row per DICOM file of pydicom's test corpus.

Reads the whole run's images.csv and GNU time output, and each file's own run
(per-file/N/images.csv, per-file/N.time), and prints markdown: the run's peak
RSS, a table of every file (size, status, error, peak RSS of its own run,
exit status), and the failures grouped by reason. Only the standard library:
it runs with the system python3.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from collections import defaultdict
from pathlib import Path


def time_fields(path: Path) -> dict[str, str]:
    """`/usr/bin/time -v` output: field -> value (plus the exit status line)."""
    out: dict[str, str] = {}
    if not path.exists():
        return out
    for line in path.read_text(errors="replace").splitlines():
        line = line.strip()
        m = re.match(r"(Maximum resident set size \(kbytes\)|Elapsed \(wall clock\) time \(h:mm:ss or m:ss\)|Exit status|Command terminated by signal)\s*:?\s*(.*)$", line)
        if m:
            out[m.group(1)] = m.group(2).strip()
    return out


def rss_mb(t: dict[str, str]) -> float | None:
    v = t.get("Maximum resident set size (kbytes)")
    return int(v) / 1024 if v else None


def rows(images_csv: Path) -> dict[str, dict[str, str]]:
    if not images_csv.exists():
        return {}
    with images_csv.open(newline="") as f:
        return {r["path"]: r for r in csv.DictReader(f)}


def reason(error: str) -> str:
    """The error without file-specific numbers, to group failures."""
    e = re.sub(r"\b\d+\b", "N", error)
    return e[:110]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--run", required=True)
    ap.add_argument("--label", required=True)
    ap.add_argument("--bin", default="")
    args = ap.parse_args()
    corpus, run = Path(args.corpus), Path(args.run)

    files = [line for line in (run / "files.txt").read_text().splitlines() if line]
    whole = rows(run / "all" / "images.csv")
    whole_time = time_fields(run / "all.time")
    index = dict(line.split("\t") for line in (run / "per-file" / "index.tsv").read_text().splitlines() if line)

    print(f"# cambox over pydicom's test files ({args.label})\n")
    print(f"- binary: `{args.bin}`")
    print(f"- corpus: {len(files)} `.dcm` files under `{corpus.name}`")
    print(f"- whole run: exit status {whole_time.get('Exit status', '?')}, "
          f"{len(whole)} rows in images.csv, peak RSS {rss_mb(whole_time) or 0:.0f} MB, "
          f"wall {whole_time.get('Elapsed (wall clock) time (h:mm:ss or m:ss)', '?')}")
    missing = [f for f in files if f not in whole]
    if missing:
        print(f"- **files without a row in the whole run**: {', '.join(missing)}")
    print()
    print("| file | bytes | status | error | own run peak RSS (MB) | own run exit |")
    print("| --- | ---: | --- | --- | ---: | --- |")
    by_reason: dict[str, list[str]] = defaultdict(list)
    counts: dict[str, int] = defaultdict(int)
    worst = (0.0, "")
    for f in files:
        r = whole.get(f)
        t = time_fields(run / "per-file" / f"{index[f]}.time")
        own = rows(run / "per-file" / index[f] / "images.csv").get(Path(f).name, {})
        status = r["status"] if r else "no row"
        err = (r or own).get("error", "") if r or own else ""
        counts[status] += 1
        if status != "ok":
            by_reason[reason(err) or status].append(f)
        mb = rss_mb(t)
        if mb and mb > worst[0]:
            worst = (mb, f)
        exit_ = t.get("Command terminated by signal") and f"signal {t['Command terminated by signal']}" or t.get("Exit status", "?")
        size = (corpus / f).stat().st_size
        print(f"| {f} | {size} | {status} | {err.replace('|', '/')} | {mb or 0:.0f} | {exit_} |")
    print()
    print("Counts: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    print(f"\nLargest peak RSS of a one-file run: {worst[0]:.0f} MB ({worst[1]})\n")
    print("## Failures by reason\n")
    print("| reason | files |")
    print("| --- | --- |")
    for why, fs in sorted(by_reason.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        print(f"| {why.replace('|', '/')} | {', '.join(fs)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
