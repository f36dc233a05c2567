#!/usr/bin/env python3
"""Re-encodes a NAB CSV (timestamp,value[,label]) in the compact form of README.md.

encode.py SOURCE.csv "HEADER" > series.txt: HEADER becomes the first comment line (the NAB
path and commit). Values are written as the CSV has them; the output decodes back to exactly
the CSV's readings (checked here before anything is written).
"""
import collections
import datetime
import sys


def read_csv(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        header = f.readline().strip().split(",")
        if header[:2] != ["timestamp", "value"]:
            sys.exit(f"{path}: header {header} is not timestamp,value")
        for n, line in enumerate(f, start=2):
            line = line.strip()
            if not line:
                continue
            fields = line.split(",")
            t = datetime.datetime.strptime(fields[0], "%Y-%m-%d %H:%M:%S")
            float(fields[1])  # a number, or this fails with the line
            rows.append((t, fields[1], n))
    return rows


def encode(rows, header):
    steps = collections.Counter(b[0] - a[0] for a, b in zip(rows, rows[1:]))
    step = steps.most_common(1)[0][0]
    out = [f"# {header} (format: README.md)", f"!step {int(step.total_seconds())}"]
    day, last = None, None
    for t, value, _ in rows:
        if last is not None and t == last + step:
            out.append(value)
        else:
            if t.date() != day:
                day = t.date()
                out.append(f"@{day.isoformat()}")
            clock = t.strftime("%H:%M" if t.second == 0 else "%H:%M:%S")
            out.append(f"{clock},{value}")
        last = t
    return out


def decode(lines):
    """What tests/bench/detector_bench.cpp's LoadSeries reads."""
    points, day, last, step = [], None, None, None
    for line in lines:
        if not line or line.startswith("#"):
            continue
        if line.startswith("!"):
            step = datetime.timedelta(seconds=int(line.split()[1]))
        elif line.startswith("@"):
            day = datetime.date.fromisoformat(line[1:])
        elif "," in line:
            clock, value = line.split(",")
            parts = [int(p) for p in clock.split(":")] + [0]
            last = datetime.datetime(day.year, day.month, day.day, parts[0], parts[1], parts[2])
            points.append((last, value))
        else:
            last += step
            points.append((last, line))
    return points


def main():
    rows = read_csv(sys.argv[1])
    lines = encode(rows, sys.argv[2])
    if decode(lines) != [(t, v) for t, v, _ in rows]:
        sys.exit("the encoding does not decode to the CSV's readings")
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
