"""The seven detectors (SPEC §4) in `vigil run` and `vigil replay`: crafted readings set each
one off; replay of the same messages gives the same alerts (same ids); `absent` fires by
processing time while a device is silent and resolves when it reports again."""

import json
import random
import unittest

from harness import T0, IntegrationTest, reading, wait_for

S = 1000


def rule(name, detector, alert=None):
    return {"id": name, "source": {"metric": "t"}, "group_by": ["device"], "detector": detector,
            "alert": alert or {"summary": "{device} " + name + " {score:.1f}"}}


RULES = [
    rule("zscore", {"method": "zscore", "window": 20, "min_samples": 10}),
    rule("ewma", {"method": "ewma", "min_samples": 10}),
    rule("mad", {"method": "mad", "window": 20, "min_samples": 10}),
    rule("spike", {"method": "spike", "max_rate": 5}),
    rule("flatline", {"method": "flatline", "for": "5s", "tolerance": 0.001}),
    rule("range", {"method": "range", "min": 0, "max": 100}),
    rule("absent", {"method": "absent", "for": "2s"}),
]


def stream():
    rng = random.Random(5)
    noisy = [reading(round(20 + rng.uniform(-0.5, 0.5), 3), T0 + i * S) for i in range(30)]
    noisy.append(reading(150, T0 + 30 * S))  # zscore, ewma, mad, spike and range
    stuck = [reading(5.0, T0 + i * S) for i in range(8)]  # flatline after 5 s
    return {"sensors/a/t": noisy, "sensors/s/t": stuck}


class Detectors(IntegrationTest):
    def test_every_detector_fires_in_run_and_replay_alike(self):
        self.receiver.start()
        agent = self.agent(rules=RULES).start()
        for topic, payloads in stream().items():
            self.broker.publish(topic, payloads)

        def firing():
            return {(e["rule"], e["key"]["device"]) for e in self.receiver.received()
                    if e["state"] == "firing"}
        expected = {("zscore", "a"), ("ewma", "a"), ("mad", "a"), ("spike", "a"), ("range", "a"),
                    ("flatline", "s")}
        wait_for(lambda: expected <= firing(), 20, "every value detector to fire")
        # Both devices then fall silent: `absent` fires for each, by processing time.
        wait_for(lambda: {("absent", "a"), ("absent", "s")} <= firing(), 20, "absent to fire")
        absent = [e for e in self.receiver.received() if e["rule"] == "absent"]
        self.assertIsNone(absent[0]["values"]["value"])
        self.assertGreaterEqual(absent[0]["values"]["score"], 2)
        # A reading resolves it.
        self.broker.publish("sensors/a/t", [reading(20, T0 + 31 * S)])
        wait_for(lambda: any(e["rule"] == "absent" and e["state"] == "resolved"
                             for e in self.receiver.received()), 20, "absent to resolve")
        spike = [e for e in self.receiver.received() if e["rule"] == "spike"][0]
        before = stream()["sensors/a/t"][29]["value"]
        self.assertEqual(spike["values"]["value"], 150.0)
        self.assertAlmostEqual(spike["values"]["score"], 150 - before)  # units/s over 1 s
        self.assertTrue(spike["values"]["anomaly"])
        self.assertEqual(spike["time"], "2026-11-22T10:00:30.000Z")
        self.assertEqual(agent.stop(), 0)

        lines = "".join(json.dumps({"topic": t, "payload": p}) + "\n"
                        for t, ps in stream().items() for p in ps)
        out = agent.run_command("replay", input_text=lines)
        self.assertEqual(out.returncode, 0, out.stderr)
        replayed = {json.loads(l)["id"]: json.loads(l) for l in out.stdout.splitlines()}
        live = [e for e in self.receiver.received() if e["rule"] != "absent"]
        for e in live:
            if e["time"] <= "2026-11-22T10:00:30.000Z":
                self.assertEqual(replayed.get(e["id"]), e, e["rule"])


if __name__ == "__main__":
    unittest.main()
