"""Actions to devices (uplink/README.md "Actions"): an `mqtt` uplink with a payload template
pointed at the local broker the agent ingests from publishes a command when an alert fires
and the opposite when it resolves, retained when asked, and at least once: a command due
while the broker is down arrives once it is back."""

import json
import subprocess
import unittest

from harness import T0, IntegrationTest, reading, wait_for

MINUTE = 60_000

FAN_RULE = {
    "id": "boiler-fan", "source": {"metric": "temperature"}, "group_by": ["device"],
    "window": {"type": "tumbling", "size": "1m"},
    "aggregates": {"avg": "avg(value)", "n": "count()"},
    "alert": {"when": "avg > 45", "clear_when": "avg < 40", "severity": "critical",
              "summary": "{device}: average {avg:.1f}"},
    "emit": ["alert", "aggregate"],
}

FAN_PAYLOAD = {"firing": {"on": True, "reason": "{summary}", "avg": "{values.avg}"},
               "resolved": {"on": False}}


class Actions(IntegrationTest):
    def actuator(self, name, topic, payload, **extra):
        """An mqtt uplink to the test's broker (the one the agent ingests from)."""
        uplink = {"name": name, "type": "mqtt", "uri": f"tcp://127.0.0.1:{self.broker.port}",
                  "topic": topic, "payload": payload, "batch": {"max_delay": "100ms"},
                  "retry": {"initial": "200ms", "max": "1s"}, "timeout": "2s"}
        uplink.update(extra)
        return uplink

    def subscribe(self, count, timeout=60):
        """mosquitto_sub on actuators/#, printing "<topic> <retained> <payload>" a line."""
        sub = subprocess.Popen(
            ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(self.broker.port), "-t", "actuators/#",
             "-q", "1", "-F", "%t %r %p", "-C", str(count), "-W", str(timeout)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(sub.kill)
        return sub

    @staticmethod
    def messages(out):
        """[(topic, retained, payload text)] of a subscriber's output."""
        rows = []
        for line in out.splitlines():
            topic, retained, payload = line.split(" ", 2)
            rows.append((topic, retained == "1", payload))
        return rows

    def test_a_command_on_firing_and_its_opposite_on_resolve_retained_when_asked(self):
        sub = self.subscribe(4)
        agent = self.agent(uplink_url=None, rules=[FAN_RULE], extra={"uplinks": [
            self.actuator("fan", "actuators/{device}/fan", FAN_PAYLOAD, retain=True),
            self.actuator("lamp", "actuators/{device}/lamp", {"firing": "ON", "resolved": "OFF"}),
        ]}).start()
        # Window 1 averages 51: firing; window 2 averages 20: resolved. Both windows' aggregates
        # go to both uplinks too, whose templates have no `aggregate`: skipped.
        self.broker.publish("sensors/d1/temperature",
                            [reading(50, T0 + 1000), reading(52, T0 + 2000),
                             reading(20, T0 + MINUTE + 1000), reading(20, T0 + 2 * MINUTE + 1000)])
        out, err = sub.communicate(timeout=90)
        got = self.messages(out)
        self.assertEqual(len(got), 4, err)
        fan = [(r, json.loads(p)) for t, r, p in got if t == "actuators/d1/fan"]
        self.assertEqual(fan, [(False, {"on": True, "reason": "d1: average 51.0", "avg": 51.0}),
                               (False, {"on": False})])
        self.assertEqual([p for t, _, p in got if t == "actuators/d1/lamp"], ["ON", "OFF"])
        # A device that subscribes later gets the fan's last command, retained; the lamp's
        # commands were not retained.
        late = self.subscribe(2, timeout=2)
        out, _ = late.communicate(timeout=30)
        self.assertEqual(self.messages(out), [("actuators/d1/fan", True, '{"on":false}')])
        for uplink in ("fan", "lamp"):
            wait_for(lambda: agent.metric("vigil_deliveries_total",
                                          f'uplink="{uplink}",outcome="skipped"') == 2,
                     10, f"the aggregates skipped by {uplink}")
            self.assertEqual(agent.metric("vigil_deliveries_total",
                                          f'uplink="{uplink}",outcome="delivered"'), 2)
        self.assertEqual(agent.stop(), 0)

    def test_a_command_due_while_the_broker_is_down_arrives_once_it_is_back(self):
        sub = self.subscribe(1)
        # Each command waits 3 s in the outbox (batch.max_delay): time to stop the broker.
        agent = self.agent(uplink_url=None, rules=[FAN_RULE], extra={
            "uplinks": [self.actuator("fan", "actuators/{device}/fan", FAN_PAYLOAD, retain=True,
                                      batch={"max_delay": "3s"})],
            "routes": [{"kinds": ["alert"], "rules": ["boiler-*"], "to": ["fan"]}]}).start()
        self.broker.publish("sensors/d1/temperature",
                            [reading(50, T0 + 1000), reading(52, T0 + 2000),
                             reading(20, T0 + MINUTE + 1000)])
        out, err = sub.communicate(timeout=60)
        self.assertEqual(json.loads(self.messages(out)[0][2])["on"], True, err)

        # The resolving reading arrives; its command is committed, then the broker goes away
        # before the uplink sends it.
        self.broker.publish("sensors/d1/temperature", [reading(20, T0 + 2 * MINUTE + 1000)])
        wait_for(lambda: agent.metric("vigil_outbox_depth", 'uplink="fan"') == 1, 10,
                 "the resolved event in the outbox")
        self.broker.stop()
        wait_for(lambda: (agent.metric("vigil_deliveries_total",
                                       'uplink="fan",outcome="retry"') or 0) >= 2, 30,
                 "failed attempts while the broker is down")
        self.assertEqual(agent.metric("vigil_outbox_depth", 'uplink="fan"'), 1)

        # The broker is back (empty: no persistence): the command arrives, retained.
        self.broker.start()
        wait_for(lambda: agent.metric("vigil_outbox_depth", 'uplink="fan"') == 0, 30,
                 "the command delivered")
        late = self.subscribe(1, timeout=10)
        out, err = late.communicate(timeout=30)
        self.assertEqual(self.messages(out), [("actuators/d1/fan", True, '{"on":false}')], err)
        self.assertEqual(agent.metric("vigil_deliveries_total", 'uplink="fan",outcome="delivered"'),
                         2)
        self.assertEqual(agent.stop(), 0)


if __name__ == "__main__":
    unittest.main()
