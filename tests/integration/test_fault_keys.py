"""Fault injection: a flood of new device ids (rules/README.md "Key eviction").

A gateway's broker gets VIGIL_FLOOD_DEVICES readings (default 1 000 000), each from a device id
never seen before: the first ones each on a topic of its own (sensors/fake-t-N/temperature),
the rest as batches on one topic whose payload names the device. The agent runs with
rules.max_keys_total = 20 000. It must stay up in bounded memory, journal every message
(nothing lost), count every reading it did not take (vigil_dropped_total{what="key_budget"},
and the per-rule figures add up to the readings), log the drops, keep serving the devices it
knew before the flood, and serve a real device that appears after the flood within a bounded
time, because the flood's one-off keys are evicted once quiet.
"""

import json
import os
import sqlite3
import threading
import time
import unittest
import urllib.request

from harness import RawMqtt, IntegrationTest, wait_for

FLOOD = int(os.environ.get("VIGIL_FLOOD_DEVICES", "1000000"))
TOPIC_FLOOD = min(FLOOD, int(os.environ.get("VIGIL_FLOOD_TOPICS", "100000")))
BUDGET = 20_000
BATCH = 100  # readings per batch message (a JSON array, one device each)
MAX_LAG = 100_000  # readings published but not yet counted by the agent
RSS_LIMIT_MIB = 300
# Under AddressSanitizer (make test-sanitize) every allocation costs more and freed memory
# waits in a quarantine (256 MiB); ThreadSanitizer (make test-tsan) keeps shadow memory and
# the history of each thread: the bound is looser, still far below what a million keys would
# take (several GiB there).
RSS_LIMIT_SANITIZED_MIB = 1200

RULES = [
    # Every device: the flood lands here. 2 s windows: quiet after 4 s (size + idle_timeout).
    {"id": "flooded", "source": {"metric": "temperature"}, "group_by": ["device"],
     "window": {"type": "tumbling", "size": "2s"},
     "aggregates": {"avg": "avg(value)", "n": "count()"},
     "alert": {"when": "avg > 45 && n >= 2", "clear_when": "avg < 40",
               "summary": "{device}: {avg:.1f}"},
     "emit": ["alert"]},
    # The real devices' aggregates; their keys need room in the same budget.
    {"id": "real-avg", "source": {"metric": "temperature", "where": 'device =~ "^(real|steady)-"'},
     "group_by": ["device"], "window": {"type": "tumbling", "size": "2s"},
     "aggregates": {"avg": "avg(value)", "n": "count()"}, "emit": ["aggregate"]},
]


def sanitized(pid):
    with open(f"/proc/{pid}/maps") as f:
        return any("libasan" in line or "libtsan" in line for line in f)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(next(line for line in f if line.startswith("VmRSS")).split()[1])


class KeyFlood(IntegrationTest):
    def config(self):
        payload = {"format": "json", "value": "value", "time": "ts", "time_unit": "ms"}
        return {
            "mqtt": {"uri": f"tcp://127.0.0.1:{self.broker.port}", "client_id": "vigil-test",
                     "subscriptions": [
                         {"topic": "sensors/{device}/{metric}", "qos": 1, "payload": payload},
                         {"topic": "flood/{metric}", "qos": 1,
                          "payload": dict(payload, tags=["device"])}]},
            "rules": {"paths": ["rules.d"], "max_keys_total": BUDGET},
            "store": {"commit_interval": "50ms", "checkpoint_interval": "1s"},
        }

    def status(self, agent):
        with urllib.request.urlopen(f"http://127.0.0.1:{agent.http_port}/api/v1/status", timeout=5) as r:
            return {rule["id"]: rule for rule in json.loads(r.read())["rules"]}

    def test_a_flood_of_new_device_ids(self):
        self.receiver.start()
        agent = self.agent(rules=RULES, extra=self.config()).start()
        pid = agent.proc.pid
        published = {"messages": 0, "readings": 0}

        # A device the agent knows before the flood keeps reporting through it.
        steady = {"sent": 0, "stop": False, "errors": []}

        def steady_device():
            try:
                raw = RawMqtt(self.broker.port, "steady")
                while not steady["stop"]:
                    # No time: the arrival time, so a reading delayed past the idle
                    # timeout is never late for its own window.
                    raw.publish("sensors/steady-1/temperature", '{"value": 20}')
                    raw.drain()
                    steady["sent"] += 1
                    time.sleep(0.5)
                raw.close()
            except Exception as e:  # reported by the main thread
                steady["errors"].append(e)

        steady_thread = threading.Thread(target=steady_device)
        steady_thread.start()
        self.addCleanup(lambda: (steady.update(stop=True), steady_thread.join(10)))
        wait_for(lambda: (agent.metric("vigil_rule_evaluations_total", 'rule="real-avg"') or 0) >= 2,
                 20, "the steady device's first readings")

        # Memory, sampled through the flood.
        rss = {"max": 0, "stop": False}

        def sample():
            while not rss["stop"] and agent.proc.poll() is None:
                rss["max"] = max(rss["max"], rss_kib(pid))
                time.sleep(0.2)

        sampler = threading.Thread(target=sample)
        sampler.start()
        self.addCleanup(lambda: (rss.update(stop=True), sampler.join(10)))

        def pace():
            # Keep the broker's queue for the agent (100 000 messages) and the agent's
            # ingest queue from filling: wait while the agent is far behind.
            deadline = time.monotonic() + 120
            while (published["readings"] + steady["sent"]
                   - (agent.metric("vigil_readings_total") or 0)) > MAX_LAG:
                self.assertLess(time.monotonic(), deadline, "the agent stopped taking readings")
                self.assertIsNone(agent.proc.poll(), "the agent died during the flood")
                time.sleep(0.05)

        started = time.monotonic()
        flood = RawMqtt(self.broker.port, "flood")
        for i in range(TOPIC_FLOOD):
            flood.publish(f"sensors/fake-t-{i}/temperature", '{"value": 1}')
            published["messages"] += 1
            published["readings"] += 1
            if i % 5000 == 4999:
                flood.drain()
                pace()
        i = TOPIC_FLOOD
        while i < FLOOD:
            n = min(BATCH, FLOOD - i)
            batch = ",".join('{"device":"fake-%d","value":1}' % d for d in range(i, i + n))
            flood.publish("flood/temperature", "[" + batch + "]")
            published["messages"] += 1
            published["readings"] += n
            i += n
            if published["messages"] % 500 == 0:
                flood.drain()
                pace()
        flood.close()
        wait_for(lambda: agent.metric("vigil_readings_total") >= published["readings"] + steady["sent"],
                 120, "every flood reading taken in")
        flood_end = time.monotonic()
        print(f"flood of {FLOOD} new device ids ({TOPIC_FLOOD} on topics of their own) "
              f"taken in {flood_end - started:.1f} s")

        # A real device that appears after the flood is served within a bounded time.
        real = RawMqtt(self.broker.port, "real")
        real_sent = 0
        real_events = lambda kind: [e for e in self.receiver.received()
                                    if e["key"].get("device") == "real-1" and e["kind"] == kind]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (real_events("alert") and real_events("aggregate")):
            real.publish("sensors/real-1/temperature", '{"value": 50}')
            real.drain()
            real_sent += 1
            time.sleep(0.25)
        real.close()
        served = time.monotonic() - flood_end
        print(f"a new device after the flood: its alert and aggregate out {served:.1f} s after it")
        self.assertTrue(real_events("alert"), "the real device's alert")
        self.assertEqual(real_events("alert")[0]["state"], "firing")
        self.assertTrue(real_events("aggregate"), "the real device's aggregates")
        self.assertLess(served, 30)

        steady["stop"] = True
        steady_thread.join(10)
        self.assertEqual(steady["errors"], [])
        rss["stop"] = True
        sampler.join(10)

        # Nothing lost: every reading taken in, every message in the journal.
        total_readings = published["readings"] + steady["sent"] + real_sent
        wait_for(lambda: agent.metric("vigil_readings_total") == total_readings, 30, "every reading")
        journal = os.path.join(agent.workdir, "state", "journal.db")
        with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as db:
            journaled = db.execute("SELECT COUNT(*) FROM journal").fetchone()[0]
        self.assertEqual(journaled, published["messages"] + steady["sent"] + real_sent)

        # Nothing silently dropped: each rule took every reading routed to it or counted it.
        last = {}

        def accounted():
            rules = last["rules"] = self.status(agent)
            f, r = rules["flooded"], rules["real-avg"]
            return (f["evaluations"] + f["late_readings"] + f["key_budget_dropped"]
                    + f["dropped_keys"] == total_readings
                    and r["evaluations"] + r["late_readings"] + r["key_budget_dropped"]
                    + r["dropped_keys"] == steady["sent"] + real_sent
                    and r["late_readings"] == 0
                    and rules)
        try:
            rules = wait_for(accounted, 10, "every reading evaluated or counted")
        except AssertionError:
            print(f"readings: {total_readings} ({steady['sent']} steady, {real_sent} real); "
                  f"rules: {last.get('rules')}")
            raise
        dropped = agent.metric("vigil_dropped_total", 'what="key_budget"')
        self.assertEqual(dropped, rules["flooded"]["key_budget_dropped"]
                         + rules["real-avg"]["key_budget_dropped"])
        self.assertGreater(dropped, FLOOD // 2)
        self.assertEqual(rules["real-avg"]["dropped_keys"], 0)
        evicted = agent.metric("vigil_keys_evicted_total", 'rule="flooded"')
        self.assertGreater(evicted, 0)
        keys = rules["flooded"]["keys"] + rules["real-avg"]["keys"]
        self.assertLessEqual(keys, BUDGET)
        log = agent.log()
        self.assertIn("rules.max_keys_total reached", log)
        self.assertIn('vigil_dropped_total{what="key_budget"}', log)
        self.assertIn("rules: evicted", log)
        print(f"key_budget drops {int(dropped)}, keys evicted {int(evicted)}, keys now {keys}, "
              f"peak RSS {rss['max'] // 1024} MiB")

        # The device known before the flood lost nothing: every reading in a closed window.
        steady_events = lambda: [e for e in self.receiver.received()
                                 if e["key"].get("device") == "steady-1" and e["kind"] == "aggregate"]
        wait_for(lambda: sum(e["values"]["n"] for e in steady_events()) == steady["sent"], 20,
                 "every reading of the steady device in its aggregates")

        # Up, in bounded memory.
        self.assertIsNone(agent.proc.poll(), "the agent keeps running")
        self.assertLess(rss["max"], (RSS_LIMIT_SANITIZED_MIB if sanitized(pid) else RSS_LIMIT_MIB) * 1024)

        # The state holds only the keys in memory: evicted keys' rows are gone.
        self.assertEqual(agent.stop(), 0)
        with sqlite3.connect(os.path.join(agent.workdir, "state", "vigil.db")) as db:
            rows = dict(db.execute("SELECT rule, COUNT(*) FROM state GROUP BY rule").fetchall())
            real_rows = db.execute("SELECT COUNT(*) FROM state WHERE key LIKE '%real-1%' "
                                   "OR key LIKE '%steady-1%'").fetchone()[0]
        self.assertLessEqual(sum(rows.values()), BUDGET)
        self.assertEqual(real_rows, 4)


if __name__ == "__main__":
    unittest.main()
