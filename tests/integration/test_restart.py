"""The agent stopped (SIGTERM) and started again mid-window: the window's result is as if it had
never stopped, and a firing alert survives the restart (its resolved event shares the
alert_id). Then the broker restarted: the agent reconnects, resubscribes and goes on."""

import time
import unittest

from harness import T0, IntegrationTest, reading, wait_for

MINUTE = 60_000


class Restart(IntegrationTest):
    def test_sigterm_mid_window_keeps_the_window_and_the_alert(self):
        self.receiver.start()
        agent = self.agent().start()
        topic = "sensors/boiler-7/temperature"
        # Window 10:00 fires; window 10:01 is half-filled when the agent stops.
        self.broker.publish(topic, [reading(50, T0 + 1000), reading(60, T0 + 2000),
                                    reading(10, T0 + MINUTE + 1000),
                                    reading(20, T0 + MINUTE + 2000)])
        wait_for(lambda: len(self.receiver.received()) >= 2, 20, "aggregate and firing alert")
        wait_for(lambda: agent.metric("vigil_readings_total") == 4, 10, "4 readings")
        self.assertEqual(agent.stop(), 0)
        self.assertIn("stopped", agent.log())

        agent.start()
        self.assertIn("restored state of 1 key(s)", agent.log())
        self.broker.publish(topic, [reading(30, T0 + MINUTE + 3000),
                                    reading(100, T0 + 2 * MINUTE + 1000)])
        wait_for(lambda: len(self.receiver.received()) >= 4, 20, "the second window's events")
        time.sleep(0.3)
        events = self.receiver.received()
        self.assertEqual([(e["kind"], e.get("state")) for e in events],
                         [("aggregate", None), ("alert", "firing"),
                          ("aggregate", None), ("alert", "resolved")])
        second = events[2]
        self.assertEqual(second["window"]["start"], "2026-11-22T10:01:00.000Z")
        self.assertEqual(second["values"], {"avg": 20.0, "max": 30.0, "n": 3})
        self.assertEqual(events[3]["alert_id"], events[1]["alert_id"])
        self.assertEqual(agent.stop(), 0)

    def test_broker_restart_reconnects_and_resubscribes(self):
        self.receiver.start()
        agent = self.agent().start()
        topic = "sensors/pump-1/temperature"
        self.broker.publish(topic, [reading(20, T0 + 1000), reading(20, T0 + MINUTE + 1000)])
        wait_for(lambda: len(self.receiver.received()) >= 1, 20, "the first aggregate")

        self.broker.stop()
        wait_for(lambda: agent.metric("vigil_mqtt_connected") == 0, 20, "the agent to notice")
        self.broker.start()
        wait_for(lambda: agent.metric("vigil_mqtt_connected") == 1, 40, "the agent to reconnect")
        self.broker.publish(topic, [reading(22, T0 + MINUTE + 2000), reading(20, T0 + 2 * MINUTE)])
        wait_for(lambda: len(self.receiver.received()) >= 2, 20, "the aggregate after reconnect")
        events = self.receiver.received()
        self.assertEqual(events[1]["values"], {"avg": 21.0, "max": 22.0, "n": 2})
        self.assertEqual(agent.stop(), 0)


if __name__ == "__main__":
    unittest.main()
