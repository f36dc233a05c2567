"""Readings in over MQTT → aggregate and alert events POSTed to the HTTP uplink; replay of the
same messages prints the very same events (same ids)."""

import json
import time
import unittest

from harness import T0, IntegrationTest, reading, wait_for

MINUTE = 60_000


class Pipeline(IntegrationTest):
    def test_readings_become_aggregate_and_alert_events(self):
        self.receiver.start()
        agent = self.agent().start()
        hot = [reading(50, T0 + 1000), reading(52, T0 + 2000), reading(54, T0 + 3000)]
        cool = [reading(30, T0 + MINUTE + 1000), reading(31, T0 + MINUTE + 2000)]
        closer = [reading(30, T0 + 2 * MINUTE + 1000)]
        self.broker.publish("sensors/boiler-1/temperature", hot + cool + closer)
        self.broker.publish("sensors/boiler-2/temperature", [reading(20, T0 + 5000),
                                                             reading(20, T0 + MINUTE + 5000)])

        events = wait_for(lambda: len(self.receiver.received()) >= 5 and self.receiver.received(),
                          20, "5 events")
        time.sleep(0.5)  # nothing more is expected
        events = self.receiver.received()
        by_key = {}
        for e in events:
            by_key.setdefault(e["key"]["device"], []).append(e)
        b1 = by_key["boiler-1"]
        self.assertEqual([(e["kind"], e.get("state")) for e in b1],
                         [("aggregate", None), ("alert", "firing"),
                          ("aggregate", None), ("alert", "resolved")])
        agg = b1[0]
        self.assertEqual(agg["agent"], "gw-test")
        self.assertEqual(agg["rule"], "temperature-high")
        self.assertEqual(agg["values"], {"avg": 52.0, "max": 54.0, "n": 3})
        self.assertEqual(agg["window"], {"start": "2026-11-22T10:00:00.000Z",
                                         "end": "2026-11-22T10:01:00.000Z"})
        firing = b1[1]
        self.assertEqual(firing["severity"], "critical")
        self.assertEqual(firing["summary"], "boiler-1: average 52.0")
        self.assertEqual(firing["time"], "2026-11-22T10:01:00.000Z")
        self.assertEqual(b1[3]["alert_id"], firing["alert_id"])
        self.assertEqual(list(firing.keys()),
                         ["id", "kind", "agent", "rule", "key", "state", "severity", "summary",
                          "labels", "values", "window", "time", "alert_id"])
        self.assertEqual([e["kind"] for e in by_key["boiler-2"]], ["aggregate"])
        self.assertEqual(len({e["id"] for e in events}), len(events))

        self.assertEqual(agent.metric("vigil_readings_total"), 8)
        self.assertEqual(agent.metric("vigil_events_total", 'kind="alert"'), 2)
        self.assertEqual(agent.stop(), 0)

        # Replay of the same messages prints exactly the events the daemon sent.
        lines = [json.dumps({"topic": "sensors/boiler-1/temperature", "payload": p})
                 for p in hot + cool + closer]
        lines += [json.dumps({"topic": "sensors/boiler-2/temperature", "payload": p})
                  for p in [reading(20, T0 + 5000), reading(20, T0 + MINUTE + 5000)]]
        out = agent.run_command("replay", input_text="\n".join(lines) + "\n")
        self.assertEqual(out.returncode, 0, out.stderr)
        replayed = [json.loads(line) for line in out.stdout.splitlines()]
        # Replay closes the windows still open at the end of its input (SPEC §12.10).
        sent = {e["id"]: e for e in events}
        for e in replayed:
            if e["id"] in sent:
                self.assertEqual(e, sent[e["id"]])
        self.assertTrue(set(sent) <= {e["id"] for e in replayed})

    def test_throughput_figure(self):
        """Prints readings/s through the whole daemon (decode, engine, commit)."""
        self.receiver.start()
        agent = self.agent().start()
        n = 20000
        payloads = [reading(20 + i % 7, T0 + i * 10) for i in range(n)]
        started = time.monotonic()
        self.broker.publish("sensors/dev-1/temperature", payloads)
        wait_for(lambda: agent.metric("vigil_readings_total") == n, 60, f"{n} readings")
        took = time.monotonic() - started
        print(f"\nthroughput: {n} readings through mosquitto and vigil in {took:.2f} s "
              f"({n / took:.0f} readings/s, bounded by mosquitto_pub at QoS 1)")
        wait_for(lambda: len(self.receiver.received()) >= 3, 20, "aggregate events")


if __name__ == "__main__":
    unittest.main()
