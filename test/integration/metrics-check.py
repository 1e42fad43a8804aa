#!/usr/bin/env python3
"""A strict reader of Prometheus text format 0.0.4, for lockd's /metrics
(metrics.sh; promtool is not in Debian 12's base). Reads the page on stdin;
prints each problem and exits 1 if there is any. It checks:
  - every line is a HELP, a TYPE or a sample; names are valid and start
    with lockd_; values are numbers;
  - every sample belongs to a family whose TYPE came before it (a
    histogram's family is its name without _bucket, _sum or _count), each
    family has one HELP and one TYPE, and no sample appears twice;
  - counters end with _total;
  - histograms: per label set, buckets in increasing le, counts never
    decreasing, the last le="+Inf" and equal to _count, and a _sum.
"""
import math
import re
import sys

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*$")
SAMPLE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? (\S+)$")
LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)')


def labels_of(text, problem):
    out, pos = [], 0
    while pos < len(text):
        m = LABEL.match(text, pos)
        if not m:
            problem("bad labels {%s}" % text)
            return ()
        out.append((m.group(1), m.group(2)))
        pos = m.end()
    return tuple(out)


def main():
    problems = []
    types, helps, seen = {}, set(), set()
    hist = {}  # (family, labels without le) -> {"buckets": [], ...}
    for n, line in enumerate(sys.stdin.read().split("\n"), 1):

        def problem(msg, n=n, line=line):
            problems.append("line %d: %s: %r" % (n, msg, line))

        if line == "":
            continue
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            parts = line.split(" ", 3)
            if len(parts) < 4 or not NAME.match(parts[2]):
                problem("bad comment")
                continue
            name, rest = parts[2], parts[3]
            if parts[1] == "HELP":
                if name in helps:
                    problem("second HELP")
                helps.add(name)
            else:
                if name in types:
                    problem("second TYPE")
                if rest not in ("counter", "gauge", "histogram", "summary",
                                "untyped"):
                    problem("unknown type")
                if rest == "counter" and not name.endswith("_total"):
                    problem("a counter's name does not end with _total")
                if name not in helps:
                    problem("TYPE before (or without) HELP")
                types[name] = rest
            continue
        if line.startswith("#"):
            problem("a comment that is neither HELP nor TYPE")
            continue
        m = SAMPLE.match(line)
        if not m:
            problem("not a sample")
            continue
        name, labels, value = m.group(1), m.group(3) or "", m.group(4)
        if not name.startswith("lockd_"):
            problem("not a lockd_ name")
        try:
            v = float(value)
        except ValueError:
            problem("value is not a number")
            continue
        lab = labels_of(labels, problem)
        if (name, lab) in seen:
            problem("sample seen before")
        seen.add((name, lab))
        family, part = name, None
        for suffix in ("_bucket", "_sum", "_count"):
            base = name[: -len(suffix)]
            if name.endswith(suffix) and types.get(base) == "histogram":
                family, part = base, suffix
        if family not in types:
            problem("no TYPE before this sample")
            continue
        if types[family] == "histogram":
            if part is None:
                problem("a histogram sample without _bucket/_sum/_count")
                continue
            rest = tuple(kv for kv in lab if kv[0] != "le")
            h = hist.setdefault((family, rest), {"buckets": []})
            if part == "_bucket":
                le = [x for k, x in lab if k == "le"]
                if len(le) != 1:
                    problem("a bucket without one le")
                    continue
                bound = math.inf if le[0] == "+Inf" else float(le[0])
                h["buckets"].append((bound, v, n))
            else:
                h[part] = v
        elif types[family] == "counter" and v < 0:
            problem("a negative counter")
    for (family, rest), h in sorted(hist.items()):
        what = "%s%s" % (family, dict(rest) if rest else "")
        b = h["buckets"]
        if not b:
            problems.append("%s: no buckets" % what)
            continue
        for (b1, c1, _), (b2, c2, n2) in zip(b, b[1:]):
            if not b2 > b1:
                problems.append("%s: le not increasing at line %d" % (what, n2))
            if c2 < c1:
                problems.append("%s: buckets not cumulative at line %d" % (what, n2))
        if b[-1][0] != math.inf:
            problems.append("%s: the last bucket is not +Inf" % what)
        if "_count" not in h or "_sum" not in h:
            problems.append("%s: no _sum or _count" % what)
        elif b[-1][1] != h["_count"]:
            problems.append("%s: +Inf %s != _count %s" % (what, b[-1][1], h["_count"]))
    for p in problems:
        print(p)
    print("metrics-check: %d samples, %d families (%d histograms), %d problems"
          % (len(seen), len(types), sum(1 for t in types.values() if t == "histogram"),
             len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
