#!/usr/bin/env python3
"""End-to-end benchmark (`make bench`): a real mosquitto on loopback, `vigil simulate` as the
QoS 1 load, and, in one run:
  1. the floor: a subscriber that only counts (count_subscriber), its CPU per million
     messages and the rate the broker delivered;
  2. the agent with a reference rule set (100 rules over the simulated series: 98 tumbling
     avg/max/count, a sliding window, a z-score detector) and a local HTTP receiver, in both
     mqtt.ack modes: readings/s, CPU seconds per million readings (from /proc), the ratio to
     the floor, peak RSS, and latency from window end to receipt upstream (p50/p99);
  3. restarts: after a SIGKILL of the after_commit agent (the journal since its last
     checkpoint re-processed) and after a SIGTERM of the on_receive one;
  4. the outbox draining to the receiver after an outage.
The load runs long enough (`make bench`: 60 s) for the windows to fill (30 s sliding windows,
60-reading z-score windows) and for checkpoints to run, as they do on a gateway. Prints a table; run from the repository: python3 tests/bench/e2e.py [--build build]."""

import argparse
import contextlib
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from harness import Broker, Receiver, free_port, wait_for  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def simulate(vigil, config, devices, metrics, rate, seconds):
    out = subprocess.run([vigil, "simulate", "--config", config, "--devices", str(devices),
                          "--metrics", str(metrics),
                          "--rate", str(rate), "--seconds", str(seconds), "--qos", "1"],
                         capture_output=True, text=True, timeout=seconds + 120, check=True)
    return int(out.stdout.split()[1])


def metric_names(metrics):
    return ["temperature"] if metrics == 1 else [f"temperature_{i}" for i in range(metrics)]


def reference_rules(count, metrics):
    """The reference rule set: for each metric, tumbling avg/max/count windows, a sliding
    window and a z-score detector, `count` rules in all; one of them (`latency`) takes every
    metric and emits its counts, which the receiver times."""
    names = metric_names(metrics)
    rules = [{"id": "latency", "source": {"metric": names}, "group_by": ["device"],
              "window": {"type": "tumbling", "size": "10s"},
              "aggregates": {"n": "count()"}, "emit": ["aggregate"]}]
    for i in range(count - 1):
        m = names[i % len(names)]
        kind = (i // len(names)) % 10
        if kind == 0:
            rules.append({"id": f"sliding{i:02d}", "source": {"metric": m},
                          "group_by": ["device"], "window": {"type": "sliding", "size": "30s"},
                          "aggregates": {"avg": "avg(value)"}, "alert": {"when": "avg > 1000"}})
        elif kind == 1:
            rules.append({"id": f"zscore{i:02d}", "source": {"metric": m},
                          "group_by": ["device"],
                          "detector": {"method": "zscore", "window": 60, "threshold": 6}})
        else:
            rules.append({"id": f"t{i:02d}", "source": {"metric": m}, "group_by": ["device"],
                          "window": {"type": "tumbling", "size": f"{10 * kind}s"},
                          "aggregates": {"avg": "avg(value)", "max": "max(value)",
                                         "n": "count()"},
                          "alert": {"when": "avg > 1000"}, "emit": ["alert"]})
    return rules


def write_config(workdir, broker, receiver, ack, http_port, rules, metrics):
    rules_dir = os.path.join(workdir, f"rules-{ack}")
    os.makedirs(rules_dir, exist_ok=True)
    with open(os.path.join(rules_dir, "bench.json"), "w") as f:
        json.dump(reference_rules(rules, metrics), f)
    config = {
        "agent": {"id": "bench", "state_dir": f"state-{ack}", "log_level": "warning"},
        "mqtt": {"uri": f"tcp://127.0.0.1:{broker.port}", "client_id": f"vigil-bench-{ack}",
                 "ack": ack,
                 "subscriptions": [{"topic": "sensors/{device}/{metric}", "qos": 1,
                                    "payload": {"format": "json", "value": "value",
                                                "time": "ts", "time_unit": "ms"}}]},
        "rules": {"paths": [rules_dir]},
        "uplinks": [{"name": "receiver", "type": "http", "url": receiver.url,
                     "batch": {"max_events": 1000, "max_delay": "50ms"}}],
        "routes": [{"kinds": ["aggregate"], "to": ["receiver"]}],
        "http": {"listen": f"127.0.0.1:{http_port}"},
    }
    path = os.path.join(workdir, f"vigil-{ack}.json")
    with open(path, "w") as f:
        json.dump(config, f)
    return path


def metric(port, name):
    """One series' value, e.g. metric(p, 'vigil_rule_evaluations_total{rule="latency"}')."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[-1])
    except OSError:
        pass
    return None


def ready(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def state_keys(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/status", timeout=5) as r:
        return sum(rule["keys"] for rule in json.load(r)["rules"])


def measure_restart(vigil, cfg, workdir, http_port):
    """Starts the agent on the state the last run left; seconds until /readyz says ready."""
    with open(os.path.join(workdir, "vigil-restart.log"), "w") as log:
        start = time.monotonic()
        agent = subprocess.Popen([vigil, "run", "--config", cfg], stderr=log, cwd=workdir)
    wait_for(lambda: ready(http_port), 120, "the restarted agent to be ready")
    took = time.monotonic() - start
    keys = state_keys(http_port)
    agent.terminate()
    agent.wait(300)
    return keys, took


def journal_after_checkpoint(workdir, ack):
    """Journaled messages a restart must re-process: those after the last checkpoint."""
    state = os.path.join(workdir, f"state-{ack}")
    with contextlib.closing(sqlite3.connect(os.path.join(state, "vigil.db"))) as db:
        row = db.execute("SELECT value FROM meta WHERE name = 'journal_position'").fetchone()
    with contextlib.closing(sqlite3.connect(os.path.join(state, "journal.db"))) as db:
        return db.execute("SELECT COUNT(*) FROM journal WHERE seq > ?",
                          (int(row[0]) if row else 0,)).fetchone()[0]


def measure_drain(vigil, workdir, broker, metrics, events):
    """An outage: `events` aggregates (a count window of 1 reading) pile up in the outbox while
    the HTTP receiver is down; then it comes back. Returns the events/s of the drain."""
    receiver = Receiver()  # not started: its port refuses
    http_port = free_port()
    rules_dir = os.path.join(workdir, "rules-drain")
    os.makedirs(rules_dir, exist_ok=True)
    with open(os.path.join(rules_dir, "each.json"), "w") as f:
        json.dump({"id": "each", "source": {"metric": metric_names(metrics)},
                   "window": {"type": "count", "count": 1},
                   "aggregates": {"v": "last(value)"}, "emit": ["aggregate"]}, f)
    cfg = {
        "agent": {"id": "bench", "state_dir": "state-drain", "log_level": "warning"},
        "mqtt": {"uri": f"tcp://127.0.0.1:{broker.port}", "client_id": "vigil-bench-drain",
                 "ack": "on_receive",
                 "subscriptions": [{"topic": "sensors/{device}/{metric}", "qos": 1,
                                    "payload": {"format": "json", "value": "value",
                                                "time": "ts", "time_unit": "ms"}}]},
        "rules": {"paths": [rules_dir]},
        "uplinks": [{"name": "receiver", "type": "http", "url": receiver.url,
                     "batch": {"max_events": 1000, "max_delay": "50ms"},
                     "retry": {"initial": "100ms", "max": "200ms"}}],
        "http": {"listen": f"127.0.0.1:{http_port}"},
    }
    path = os.path.join(workdir, "vigil-drain.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    with open(os.path.join(workdir, "vigil-drain.log"), "w") as log:
        agent = subprocess.Popen([vigil, "run", "--config", path], stderr=log, cwd=workdir)
    try:
        wait_for(lambda: metric(http_port, "vigil_mqtt_connected") == 1, 20, "the agent")
        published = simulate(vigil, path, 1000, metrics, 10000, events / 10000)
        depth = 'vigil_outbox_depth{uplink="receiver"}'
        wait_for(lambda: (metric(http_port, depth) or 0) >= published, 120,
                 "the outbox to fill")
        start = time.monotonic()
        receiver.start()
        wait_for(lambda: len(receiver.received()) >= published, 300, "the outbox to drain")
        took = time.monotonic() - start
    finally:
        agent.terminate()
        agent.wait(300)
        receiver.stop()
    return published, took


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--metrics", type=int, default=10, help="metrics per device")
    ap.add_argument("--rate", type=int, default=2000)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--rules", type=int, default=100, help="rules in all (≥ 2)")
    ap.add_argument("--patience", type=int, default=120,
                    help="seconds to wait for the agent to catch up before reporting it behind")
    ap.add_argument("--drain-events", type=int, default=50000,
                    help="events queued during the outage of the drain measurement")
    ap.add_argument("--workdir", help="keep the configs, state and logs in this (empty) folder "
                    "instead of a temporary one, e.g. to profile a restart on the state left")
    args = ap.parse_args()
    vigil = os.path.abspath(os.path.join(args.build, "agent", "vigil"))
    counter = os.path.abspath(os.path.join(args.build, "tests", "bench", "count_subscriber"))
    rows = []
    if args.workdir:
        os.makedirs(args.workdir, exist_ok=True)
    with (contextlib.nullcontext(os.path.abspath(args.workdir)) if args.workdir
          else tempfile.TemporaryDirectory(prefix="vigil-bench-")) as workdir:
        broker = Broker(workdir)
        receiver = Receiver().start()
        arrivals = []
        lock = threading.Lock()
        original = receiver.events

        class Recorder(list):  # stamps each accepted event with its arrival time
            def extend(self, events):
                now = time.time() * 1000
                with lock:
                    for e in events:
                        arrivals.append(now - _ms(e["window"]["end"]))
                super().extend(events)
        receiver.events = Recorder(original)

        # 1. The floor.
        n = args.rate * args.seconds
        cfg_floor = write_config(workdir, broker, receiver, "after_commit", free_port(), args.rules,
                                 args.metrics)
        sub = subprocess.Popen([counter, f"tcp://127.0.0.1:{broker.port}", "sensors/#", "1",
                                str(n)], stdout=subprocess.PIPE, text=True)
        sub.stdout.readline()  # subscribed
        simulate(vigil, cfg_floor, args.devices, args.metrics, args.rate, args.seconds)
        _, status, usage = os.wait4(sub.pid, 0)
        got, span, sub_rss_kib = sub.stdout.read().split()
        got, span = int(got), float(span)
        floor_cpu = (usage.ru_utime + usage.ru_stime) / max(got, 1) * 1e6
        rows.append(("count_subscriber (floor)", got / max(span, 1e-3), floor_cpu, None,
                     int(sub_rss_kib) / 1024, None, None))

        # 2. The agent, both ack modes.
        restart = recovery = None
        for ack in ("after_commit", "on_receive"):
            http_port = free_port()
            cfg = write_config(workdir, broker, receiver, ack, http_port, args.rules, args.metrics)
            with open(os.path.join(workdir, f"vigil-{ack}.log"), "w") as log:
                agent = subprocess.Popen([vigil, "run", "--config", cfg], stderr=log,
                                         cwd=workdir)
            wait_for(lambda: metric(http_port, "vigil_mqtt_connected") == 1, 20, "the agent")
            with lock:
                arrivals.clear()
            cpu0 = cpu_seconds(agent.pid)
            start = time.monotonic()
            published = simulate(vigil, cfg, args.devices, args.metrics, args.rate, args.seconds)
            # Processed, not only received: the engine has evaluated every reading. The rate
            # is over the time until the last reading was processed.
            processed = 'vigil_rule_evaluations_total{rule="latency"}'
            done, last_change = 0, start
            deadline = start + args.seconds + args.patience
            while done < published and time.monotonic() < deadline:
                time.sleep(0.2)
                now = metric(http_port, processed) or 0
                if now > done:
                    done, last_change = now, time.monotonic()
            behind = f" (fell behind: {done:.0f} of {published} processed)" \
                if done < published else ""
            took = last_change - start
            readings = metric(http_port, processed) or 1
            cpu = cpu_seconds(agent.pid) - cpu0
            rss = peak_rss_mib(agent.pid)
            time.sleep(1)
            with lock:
                lat = sorted(arrivals)
            if ack == "after_commit" or behind:
                agent.kill()  # a crash: the restart re-processes the journal since the checkpoint
            else:
                agent.terminate()
            agent.wait(300)
            if ack == "after_commit":
                # 3a. Restart after the crash.
                pending = journal_after_checkpoint(workdir, ack)
                recovery = (pending,) + measure_restart(vigil, cfg, workdir, http_port)
            else:
                # 3b. Restart on the state it left (a checkpoint of every key at SIGTERM).
                restart = measure_restart(vigil, cfg, workdir, http_port)
            p50 = statistics.median(lat) if lat else None
            p99 = lat[int(len(lat) * 0.99)] if lat else None
            per_million = cpu / readings * 1e6
            rows.append((f"vigil ack={ack}{behind}", readings / took, per_million,
                         per_million / floor_cpu, rss, p50, p99))
        # 4. Outbox drain after an outage.
        drained, drain_took = measure_drain(vigil, workdir, broker, args.metrics,
                                            args.drain_events)
        broker.stop()
        receiver.stop()

    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                  if line.startswith("model name")), "unknown CPU")
    print(f"\n{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores ({model}); the broker, the "
          f"load generator and the measured process share them")
    print(f"end-to-end: {args.devices} devices × {args.metrics} metrics = "
          f"{args.devices * args.metrics} series, {args.rate} QoS 1 readings/s requested for "
          f"{args.seconds} s, {args.rules} rules (per metric: tumbling avg/max/count, a sliding "
          f"window, a z-score detector; one rule over every metric)")
    print(f"{'process':60} {'readings/s':>11} {'CPU s/M':>8} {'× floor':>8} {'peak RSS':>9} "
          f"{'p50 ms':>8} {'p99 ms':>8}")
    for name, rate, cpu, ratio, rss, p50, p99 in rows:
        print(f"{name:60} {rate:11.0f} {cpu:8.1f} "
              f"{(f'{ratio:.2f}' if ratio else '-'):>8} {rss:7.1f}Mi "
              f"{(f'{p50:.0f}' if p50 is not None else '-'):>8} "
              f"{(f'{p99:.0f}' if p99 is not None else '-'):>8}")
    if restart:
        print(f"restart with {restart[0]} keys of state: ready (/readyz) {restart[1]:.2f} s "
              f"after start")
    if recovery:
        print(f"restart after SIGKILL (ack=after_commit) with {recovery[1]} keys of state and "
              f"{recovery[0]} journaled messages since the last checkpoint to re-process: "
              f"ready {recovery[2]:.2f} s after start")
    print(f"outbox drain after an outage: {drained} events in {drain_took:.2f} s "
          f"({drained / drain_took:.0f} events/s, batches of up to 1000)")
    print("(latency: from a window's end, in event time = simulate's clock, to its aggregate "
          "arriving at the HTTP receiver; it includes waiting for the next reading that closes "
          "the window)")


def _ms(rfc3339):
    t = time.strptime(rfc3339[:19], "%Y-%m-%dT%H:%M:%S")
    import calendar
    return calendar.timegm(t) * 1000 + int(rfc3339[20:23])


if __name__ == "__main__":
    main()
