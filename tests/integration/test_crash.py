"""The crash test (SPEC §8): under steady QoS 1 load from `vigil simulate`, the agent is
killed with SIGKILL at random moments and restarted, over and over, while the receiver
answers 503 at random. Then: no reading the broker accepted is missing from the journal
(mqtt.ack = after_commit), no event id arrives with two different bodies, and every event
that `vigil replay --journal` computes for a closed window reached the receiver.

Bounded for `make test` (20 kills in about 30 s). The long form:
  VIGIL_CRASH_KILLS=200 VIGIL_CRASH_SECONDS=300 python3 -m unittest -v test_crash
"""

import json
import os
import random
import signal
import sqlite3
import subprocess
import threading
import time
import unittest

from harness import VIGIL, IntegrationTest, wait_for

KILLS = int(os.environ.get("VIGIL_CRASH_KILLS", "20"))
# VIGIL_CRASH_ACK=on_receive measures what that mode loses (and checks nothing else).
ACK = os.environ.get("VIGIL_CRASH_ACK", "after_commit")
SECONDS = int(os.environ.get("VIGIL_CRASH_SECONDS", "30"))

RULE = {"id": "hot", "source": {"metric": "temperature"}, "group_by": ["device"],
        "window": {"type": "tumbling", "size": "2s", "idle_timeout": "1h"},
        "aggregates": {"avg": "avg(value)", "max": "max(value)", "n": "count()"},
        "alert": {"when": "avg > 35", "clear_when": "avg < 30", "severity": "critical"},
        "emit": ["alert", "aggregate"]}


class CrashTest(IntegrationTest):
    def test_sigkill_under_load_loses_nothing_and_duplicates_only_identically(self):
        rng = random.Random(20261130)
        self.receiver.status = 200
        self.receiver.start()
        flaky = threading.Event()

        def flap():  # the receiver answers 503 about a third of the time
            while not flaky.is_set():
                self.receiver.status = 503 if rng.random() < 0.33 else 200
                time.sleep(0.2)
        flapper = threading.Thread(target=flap)
        flapper.start()
        self.addCleanup(flapper.join)
        self.addCleanup(flaky.set)

        agent = self.agent(rules=[RULE])
        config = json.load(open(agent.config_path))
        config["mqtt"]["ack"] = ACK
        config["uplinks"][0].update({"batch": {"max_events": 50, "max_delay": "50ms"},
                                     "retry": {"initial": "50ms", "max": "300ms"}})
        json.dump(config, open(agent.config_path, "w"))
        agent.start()

        sim = subprocess.Popen([VIGIL, "simulate", "--config", agent.config_path, "--devices",
                                "10", "--rate", "300", "--seconds", str(SECONDS), "--qos", "1",
                                "--seed", "7"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
        kills = 0
        deadline = time.monotonic() + SECONDS - 2
        while kills < KILLS and time.monotonic() < deadline:
            time.sleep(rng.uniform(0.3, 1.2))
            agent.proc.send_signal(signal.SIGKILL)
            agent.proc.wait(10)
            agent.proc = None
            kills += 1
            agent.start(wait_connected=False)
        out, err = sim.communicate(timeout=SECONDS + 60)
        self.assertEqual(sim.returncode, 0, err)
        published = int(out.split()[1])  # "published N readings in S s (R/s)"
        wait_for(lambda: agent.metric("vigil_mqtt_connected") == 1, 30, "the agent to connect")

        journal = os.path.join(self.workdir, "state", "journal.db")

        def journaled():
            db = sqlite3.connect(journal)
            try:
                return db.execute("SELECT topic, payload FROM journal").fetchall()
            finally:
                db.close()
        if ACK == "on_receive":
            time.sleep(5)
            agent.stop()
            lost = published - len(set(journaled()))
            print(f"\ncrash test (on_receive): {kills} SIGKILLs under {published} readings: "
                  f"{lost} readings lost ({100 * lost / published:.2f}%)")
            return
        wait_for(lambda: len(journaled()) >= published, 60, "every published reading journaled")
        flaky.set()
        self.receiver.status = 200
        wait_for(lambda: agent.metric("vigil_outbox_depth", 'uplink="receiver"') == 0, 60,
                 "the outbox to drain")
        self.assertEqual(agent.stop(), 0)

        rows = journaled()
        distinct = set(rows)
        lost = published - len(distinct)
        self.assertEqual(lost, 0, "readings lost")
        self.assertEqual(len(rows), len(distinct), "a message journaled twice")

        received = self.receiver.received()
        bodies = {}
        for e in received:
            if e["id"] in bodies:
                self.assertEqual(bodies[e["id"]], e, "one id, two different bodies")
            bodies[e["id"]] = e
        duplicates = len(received) - len(bodies)

        replay = agent.run_command("replay", "--journal")
        self.assertEqual(replay.returncode, 0, replay.stderr)
        expected = [json.loads(line) for line in replay.stdout.splitlines()]
        # A window is closed live once a later reading of its key has arrived.
        last_time = {}
        for topic, payload in rows:
            device = topic.split("/")[1]
            t = json.loads(payload)["ts"]
            last_time[device] = max(last_time.get(device, 0), t)
        closed = []
        for e in expected:
            end_ms = int(time.mktime(time.strptime(e["window"]["end"][:19], "%Y-%m-%dT%H:%M:%S"))
                         - time.timezone) * 1000 + int(e["window"]["end"][20:23])
            if end_ms <= last_time[e["key"]["device"]]:
                closed.append(e)
        missing = [e for e in closed if e["id"] not in bodies]
        self.assertEqual(missing, [], "committed events missing at the receiver")
        for e in closed:
            self.assertEqual(bodies[e["id"]], e, "the receiver's event differs from replay's")
        extra = [i for i in bodies if i not in {e["id"] for e in expected}]
        self.assertEqual(extra, [], "events replay --journal does not produce")
        print(f"\ncrash test: {kills} SIGKILLs under {published} QoS 1 readings; "
              f"{len(closed)} events checked against replay --journal, "
              f"{duplicates} duplicate deliveries (same id, same body), "
              f"{agent.metric('vigil_duplicate_messages_total') or 0:.0f} redeliveries recognised "
              f"in the last run, readings lost: {lost}")


if __name__ == "__main__":
    unittest.main()
