#!/usr/bin/env python3
"""Per-function instructions per request of two callgrind runs, and their
difference, for A/B of a change (see benches/README.md, session 18).

usage: benches/scripts/cg-compare.py DIR_A REQUESTS_A DIR_B REQUESTS_B
  DIR_*: the directories instructions.sh names ("callgrind files: DIR/cg.*")
  REQUESTS_*: the request counts it printed

The runtime's own parking, epoll and clock functions move by a few hundred
instructions between identical runs (how many requests one wake-up serves
under valgrind), so the total is also given without them.
"""
import collections
import glob
import re
import signal
import subprocess
import sys

NOISE = ("tokio::runtime", "park", "epoll", "mio::", "Timespec", "clock_gettime",
         "signal::Driver", "pthread_", "crossbeam", "do_run_pending")


def load(directory, requests):
    files = glob.glob(directory + "/cg.*.1") or glob.glob(directory + "/cg.*")
    per_fn = collections.Counter()
    for path in files:
        out = subprocess.run(
            ["callgrind_annotate", "--inclusive=no", "--threshold=100", "--auto=no", path],
            capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            m = re.match(r"\s*([\d,]+) \([ \d.]+%\)\s+(.*)$", line)
            if not m or "PROGRAM TOTALS" in line:
                continue
            name = re.sub(r" \[.*\]$", "", m.group(2))
            name = name.split(":", 1)[1] if ":" in name else name
            name = re.sub(r" \([\d,]+x\)$", "", name)
            per_fn[name] += int(m.group(1).replace(",", "")) / requests
    return per_fn


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    a = load(sys.argv[1], float(sys.argv[2]))
    b = load(sys.argv[3], float(sys.argv[4]))
    quiet = lambda k: not any(s in k for s in NOISE)
    ta = sum(v for k, v in a.items() if quiet(k))
    tb = sum(v for k, v in b.items() if quiet(k))
    print(f"total {sum(a.values()):.0f} -> {sum(b.values()):.0f}; "
          f"without the runtime's park/clock {ta:.0f} -> {tb:.0f} ({tb - ta:+.0f})")
    for k in sorted(set(a) | set(b), key=lambda k: b[k] - a[k]):
        if abs(b[k] - a[k]) >= 15 and quiet(k):
            print(f"{a[k]:8.0f} {b[k]:8.0f} {b[k] - a[k]:+7.0f}  {k[:120]}")


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `| head` ends it quietly
    main()
