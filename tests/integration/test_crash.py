"""The crash test (SPEC §8): under steady QoS 1 load from `vigil simulate`, the agent is
killed with SIGKILL at random moments and restarted, over and over, while the receiver
answers 503 at random. Beside the simulator, three devices send the same payload bytes every
time (no time in them) and fall silent for a while, over and over: an `absent` rule and a
session window closed by its idle timeout fire by processing time. Then: no reading the broker
accepted is missing from the journal (mqtt.ack = after_commit) or journaled twice, no event id
arrives with two different bodies, every event that `vigil replay --journal` computes for a
closed window reached the receiver, and the timer-driven events came out the same after each
crash (one alert id per episode, episodes of a key never overlapping; sessions of a key never
overlapping).

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

# The devices that repeat their payload and go silent, and the rules their silence drives.
REPEATERS = 3
REPEATED_PAYLOAD = '{"value": 21.5}'
GONE_RULE = {"id": "gone", "source": {"metric": "humidity"}, "group_by": ["device"],
             "detector": {"method": "absent", "for": "1500ms"}, "alert": {"severity": "warning"}}
VISITS_RULE = {"id": "visits", "source": {"metric": "humidity"}, "group_by": ["device"],
               "window": {"type": "session", "gap": "2s", "idle_timeout": "1s"},
               "aggregates": {"n": "count()"}, "emit": ["aggregate"]}

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

        agent = self.agent(rules=[RULE, GONE_RULE, VISITS_RULE])
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
        # Each repeater sends every 0.25 s for 3 s, then is silent for 2.5 s (phase-shifted).
        repeaters = [subprocess.Popen(["mosquitto_pub", "-h", "127.0.0.1", "-p",
                                       str(self.broker.port), "-q", "1", "-t",
                                       f"sensors/rep-{k}/humidity", "-l"],
                                      stdin=subprocess.PIPE, text=True) for k in range(REPEATERS)]
        repeated = [0] * REPEATERS
        quiet = threading.Event()

        def repeat():
            t0 = time.monotonic()
            while not quiet.is_set():
                elapsed = time.monotonic() - t0
                for k, proc in enumerate(repeaters):
                    if (elapsed + 1.8 * k) % 5.5 < 3.0:
                        proc.stdin.write(REPEATED_PAYLOAD + "\n")
                        proc.stdin.flush()
                        repeated[k] += 1
                time.sleep(0.25)
        repeater = threading.Thread(target=repeat)
        repeater.start()
        self.addCleanup(lambda: [p.kill() for p in repeaters if p.poll() is None])

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
        quiet.set()
        repeater.join()
        for proc in repeaters:
            proc.stdin.close()
            self.assertEqual(proc.wait(60), 0)
        published = int(out.split()[1])  # "published N readings in S s (R/s)"
        wait_for(lambda: agent.metric("vigil_mqtt_connected") == 1, 30, "the agent to connect")

        journal = os.path.join(self.workdir, "state", "journal.db")

        def journaled():
            db = sqlite3.connect(journal)
            try:
                return db.execute("SELECT topic, payload FROM journal "
                                  "WHERE topic NOT LIKE 'sensors/rep-%'").fetchall()
            finally:
                db.close()

        def journaled_repeats():
            db = sqlite3.connect(journal)
            try:
                return db.execute("SELECT topic, COUNT(*) FROM journal "
                                  "WHERE topic LIKE 'sensors/rep-%' GROUP BY topic").fetchall()
            finally:
                db.close()
        want_repeats = sorted((f"sensors/rep-{k}/humidity", repeated[k]) for k in range(REPEATERS))
        if ACK == "on_receive":
            time.sleep(5)
            agent.stop()
            lost = published - len(set(journaled()))
            print(f"\ncrash test (on_receive): {kills} SIGKILLs under {published} readings: "
                  f"{lost} readings lost ({100 * lost / published:.2f}%)")
            return
        wait_for(lambda: len(journaled()) >= published, 60, "every published reading journaled")
        wait_for(lambda: sorted(journaled_repeats()) == want_repeats, 60,
                 f"each repeated payload journaled once ({want_repeats})")
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

        self.assertEqual(sorted(journaled_repeats()), want_repeats, "repeated payloads lost")
        received = self.receiver.received()
        bodies = {}
        for e in received:
            if e["id"] in bodies:
                self.assertEqual(bodies[e["id"]], e, "one id, two different bodies")
            bodies[e["id"]] = e
        duplicates = len(received) - len(bodies)

        self.check_timer_events(bodies.values())
        # `replay --journal` drives the timers by arrival times, not the live clock: it is
        # compared on the window rule.
        bodies = {i: e for i, e in bodies.items() if e["rule"] == RULE["id"]}
        replay = agent.run_command("replay", "--journal")
        self.assertEqual(replay.returncode, 0, replay.stderr)
        expected = [json.loads(line) for line in replay.stdout.splitlines()]
        expected = [e for e in expected if e["rule"] == RULE["id"]]
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


    def check_timer_events(self, events):
        """After every crash the timers fired at the moments they had: had recovery fired one
        again at another moment, a key would show a second alert id for one episode, or two
        sessions covering the same readings."""
        alerts = [e for e in events if e["rule"] == GONE_RULE["id"]]
        self.assertTrue(any(e["state"] == "firing" for e in alerts), "no absent alert fired")
        by_alert = {}
        for e in alerts:
            by_alert.setdefault(e["alert_id"], []).append(e)
        episodes = {}
        for alert_id, es in by_alert.items():
            states = sorted(e["state"] for e in es)
            self.assertIn(states, (["firing"], ["firing", "resolved"]),
                          f"alert {alert_id}: {states}")
            fired = next(e["time"] for e in es if e["state"] == "firing")
            resolved = next((e["time"] for e in es if e["state"] == "resolved"), None)
            episodes.setdefault(es[0]["key"]["device"], []).append((fired, resolved, alert_id))
        for device, eps in episodes.items():
            eps.sort()
            for (_, resolved, a), (fired, _, b) in zip(eps, eps[1:]):
                self.assertIsNotNone(resolved, f"{device}: {a} still firing when {b} fired")
                self.assertLessEqual(resolved, fired, f"{device}: episodes {a} and {b} overlap")
        sessions = {}
        for e in events:
            if e["rule"] == VISITS_RULE["id"]:
                sessions.setdefault(e["key"]["device"], []).append(
                    (e["window"]["start"], e["window"]["end"]))
        self.assertTrue(sessions, "no session closed by its idle timeout")
        for device, ws in sessions.items():
            ws.sort()
            for (_, end), (start, _) in zip(ws, ws[1:]):
                self.assertLessEqual(end, start, f"{device}: sessions overlap: {ws}")
        print(f"\ntimer-driven events: {len(by_alert)} absent alert episodes, "
              f"{sum(len(w) for w in sessions.values())} sessions closed by idle timeout")


if __name__ == "__main__":
    unittest.main()
