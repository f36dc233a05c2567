"""Stages of stream processing on a real broker (rules/README.md "Derived streams", "Joins",
"Reference tables"): temperature and humidity readings are joined per device into a dew
point, whose 10-second average is a derived metric; a second rule compares that metric with a
per-device threshold from a CSV table, and its alert sends a fan command back to the local
broker, the opposite when it resolves. `vigil replay --journal` gives the same alerts."""

import json
import os
import subprocess
import unittest

from harness import T0, IntegrationTest, reading, wait_for

DEW_RULE = {
    "id": "dew", "description": "dew point per device, from two streams",
    "source": {"join": {"metrics": ["temperature", "humidity"], "on": ["device"],
                        "within": "2s"}},
    # No idle flush while the test publishes: windows close by the watermark alone.
    "window": {"type": "tumbling", "size": "10s", "lateness": "1m", "idle_timeout": "10m"},
    "aggregates": {"dew": "avg(temperature - (100 - humidity) / 5)", "pairs": "count()"},
    "output": {"metric": "dew_10s", "value": "dew"},
    "emit": [],
}

DAMP_RULE = {
    "id": "damp", "source": {"metric": "dew_10s"}, "group_by": ["device"],
    "window": {"type": "count", "count": 1},
    "aggregates": {"dew": "last(value)"},
    "alert": {"when": "dew > devices.max_dew", "clear_when": "dew < devices.max_dew - 3",
              "summary": "{device}: dew point {dew:.1f} above {devices.max_dew} in {devices.room}"},
}

FAN = {"firing": {"on": True, "why": "{summary}"}, "resolved": {"on": False}}


class Streams(IntegrationTest):
    def test_joined_derived_enriched_alert_commands_the_fan_and_replays_the_same(self):
        table = os.path.join(self.workdir, "devices.csv")
        with open(table, "w") as f:
            f.write("device,max_dew,room\nd1,12,cellar\nd2,30,attic\n")  # d3 has no row
        sub = subprocess.Popen(
            ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(self.broker.port), "-t", "actuators/#",
             "-q", "1", "-F", "%t %p", "-C", "2", "-W", "90"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(sub.kill)
        agent = self.agent(uplink_url=None, rules=[DEW_RULE, DAMP_RULE], extra={
            "tables": {"devices": {"file": "devices.csv", "key": "device"}},
            "uplinks": [{"name": "fan", "type": "mqtt",
                         "uri": f"tcp://127.0.0.1:{self.broker.port}",
                         "topic": "actuators/{device}/fan", "payload": FAN,
                         "batch": {"max_delay": "100ms"}, "retry": {"initial": "200ms"}}],
        }).start()
        # 50 s of readings a second: damp air (dew point 25 − 30/5 = 19) for 20 s, then dry
        # (15 − 50/5 = 5). All temperatures first, then all humidities: the join's lateness
        # (1 min) holds them until their partners come.
        for device in ("d1", "d2", "d3"):
            for metric, damp, dry in (("temperature", 25, 15), ("humidity", 70, 50)):
                self.broker.publish(f"sensors/{device}/{metric}", [
                    reading(damp if s < 20 else dry, T0 + s * 1000) for s in range(50)])
        wait_for(lambda: agent.metric("vigil_readings_total") == 300, 30, "every reading")
        self.assertEqual(agent.metric("vigil_events_total", 'kind="alert"') or 0, 0,
                         "no window may close before the watermark passes it")
        # Readings 3 minutes on move the watermark past every window: they close in order.
        for device in ("d1", "d2", "d3"):
            for metric, value in (("temperature", 15), ("humidity", 50)):
                self.broker.publish(f"sensors/{device}/{metric}", [reading(value, T0 + 180_000)])

        out, err = sub.communicate(timeout=120)
        commands = [line.split(" ", 1) for line in out.splitlines()]
        self.assertEqual(
            [(topic, json.loads(payload)) for topic, payload in commands],
            [("actuators/d1/fan", {"on": True, "why": "d1: dew point 19.0 above 12 in cellar"}),
             ("actuators/d1/fan", {"on": False})], err)
        # Every window of every device reached the second rule as a derived reading; only d1
        # crossed its own threshold (d2's is 30; d3 has no row, so no threshold).
        wait_for(lambda: agent.metric("vigil_rule_evaluations_total", 'rule="damp"') == 15, 20,
                 "five derived readings per device")
        self.assertEqual(agent.metric("vigil_late_readings_total", 'rule="dew"'), 0)
        self.assertEqual(agent.metric("vigil_join_dropped_total", 'rule="dew"'), 0)
        self.assertEqual(agent.metric("vigil_events_total", 'kind="aggregate"') or 0, 0)
        self.assertEqual(agent.stop(), 0)

        replay = agent.run_command("replay", "--journal")
        self.assertEqual(replay.returncode, 0, replay.stderr)
        events = [json.loads(line) for line in replay.stdout.splitlines()]
        self.assertEqual([(e["rule"], e["key"], e["state"]) for e in events],
                         [("damp", {"device": "d1"}, "firing"),
                          ("damp", {"device": "d1"}, "resolved")])
        self.assertEqual(events[0]["summary"], "d1: dew point 19.0 above 12 in cellar")


if __name__ == "__main__":
    unittest.main()
