"""Every window type through the real binary: `vigil replay` (offline) and `vigil run`
(mosquitto → HTTP receiver) give the same events for the same readings."""

import json
import unittest

from harness import T0, IntegrationTest, reading, wait_for

S = 1000

RULES = [
    {"id": "tumbling", "source": {"metric": "t"}, "group_by": ["device"],
     "window": {"type": "tumbling", "size": "10s"},
     "aggregates": {"n": "count()", "avg": "avg(value)"}, "emit": ["aggregate"]},
    {"id": "hopping", "source": {"metric": "t"}, "group_by": ["device"],
     "window": {"type": "hopping", "size": "10s", "slide": "5s"},
     "aggregates": {"n": "count()", "max": "max(value)"}, "emit": ["aggregate"]},
    {"id": "sliding", "source": {"metric": "t"}, "group_by": ["device"],
     "window": {"type": "sliding", "size": "10s"},
     "aggregates": {"n": "count()", "min": "min(value)"},
     "alert": {"when": "min > 25", "summary": "{device} min {min}"}, "emit": ["alert"]},
    {"id": "session", "source": {"metric": "t"}, "group_by": ["device"],
     "window": {"type": "session", "gap": "8s"},
     "aggregates": {"n": "count()", "delta": "delta(value)", "p90": "percentile(value, 90)"},
     "emit": ["aggregate"]},
    {"id": "count", "source": {"metric": "t"}, "group_by": ["device"],
     "window": {"type": "count", "count": 4},
     "aggregates": {"n": "count()", "sum": "sum(value)", "sd": "stddev(value)"},
     "emit": ["aggregate"]},
]

# Readings at 0..5 s, then a pause, then 20..24 s: two sessions, several tumbling windows.
TIMES = [0, 1, 2, 3, 4, 5, 20, 21, 22, 23, 24]
VALUES = [20, 22, 24, 26, 28, 30, 30, 31, 32, 33, 34]
READINGS = [reading(v, T0 + t * S) for t, v in zip(TIMES, VALUES)]


def summary(events):
    out = {}
    for e in events:
        out.setdefault(e["rule"], []).append(
            (e["kind"], e.get("state"), e["window"]["start"][11:19], e["window"]["end"][11:19],
             e["values"]))
    return out


class Windows(IntegrationTest):
    def test_replay_computes_every_window_type(self):
        agent = self.agent(rules=RULES)
        lines = "".join(json.dumps({"topic": "sensors/d1/t", "payload": p}) + "\n"
                        for p in READINGS)
        out = agent.run_command("replay", input_text=lines)
        self.assertEqual(out.returncode, 0, out.stderr)
        got = summary(json.loads(line) for line in out.stdout.splitlines())
        self.assertEqual(got["tumbling"], [
            ("aggregate", None, "10:00:00", "10:00:10", {"n": 6, "avg": 25.0}),
            ("aggregate", None, "10:00:20", "10:00:30", {"n": 5, "avg": 32.0})])
        self.assertEqual([w[2:] for w in got["hopping"]], [
            ("09:59:55", "10:00:05", {"n": 5, "max": 28.0}),
            ("10:00:00", "10:00:10", {"n": 6, "max": 30.0}),
            ("10:00:05", "10:00:15", {"n": 1, "max": 30.0}),
            ("10:00:15", "10:00:25", {"n": 5, "max": 34.0}),
            ("10:00:20", "10:00:30", {"n": 5, "max": 34.0})])
        # Sliding over (t-10s, t]: min > 25 first holds at 20 s (only 30 is in the window).
        self.assertEqual(got["sliding"], [
            ("alert", "firing", "10:00:10", "10:00:20", {"n": 1, "min": 30.0})])
        self.assertEqual(got["session"], [
            ("aggregate", None, "10:00:00", "10:00:13", {"n": 6, "delta": 10.0, "p90": 29.0}),
            ("aggregate", None, "10:00:20", "10:00:32", {"n": 5, "delta": 4.0, "p90": 33.6})])
        self.assertEqual([w[4]["n"] for w in got["count"]], [4, 4, 3])
        self.assertEqual(got["count"][0][4]["sum"], 92.0)
        self.assertAlmostEqual(got["count"][0][4]["sd"], 2.23606797749979)

        again = agent.run_command("replay", input_text=lines)
        self.assertEqual(again.stdout, out.stdout, "replay is byte-identical")

    def test_run_matches_replay(self):
        self.receiver.start()
        agent = self.agent(rules=RULES).start()
        self.broker.publish("sensors/d1/t", READINGS)
        # Live, open windows close by watermark or idle timeout; what has closed must match
        # replay's events one for one.
        wait_for(lambda: len(self.receiver.received()) >= 11, 30, "events from every rule")
        self.assertEqual(agent.stop(), 0)
        live = {e["id"]: e for e in self.receiver.received()}
        lines = "".join(json.dumps({"topic": "sensors/d1/t", "payload": p}) + "\n"
                        for p in READINGS)
        replayed = {json.loads(line)["id"]: json.loads(line)
                    for line in agent.run_command("replay", input_text=lines).stdout.splitlines()}
        for event_id, event in live.items():
            self.assertIn(event_id, replayed)
            self.assertEqual(event, replayed[event_id])


if __name__ == "__main__":
    unittest.main()
