"""The uplink down for a while (refusing connections, then answering 503): the agent keeps
every event in its outbox, retries, and delivers all of them in order once it is back."""

import time
import unittest

from harness import T0, IntegrationTest, reading, wait_for

MINUTE = 60_000


class Outage(IntegrationTest):
    def test_refused_then_503_then_everything_arrives_in_order(self):
        # The receiver's port is reserved but nothing listens: connections are refused.
        agent = self.agent().start()
        for device in ("d1", "d2", "d3"):
            self.broker.publish(f"sensors/{device}/temperature",
                                [reading(50 + m, T0 + m * MINUTE + s * 1000)
                                 for m in range(6) for s in (1, 2)])
        # 5 closed windows per device → 5 aggregates + 1 firing alert per device.
        wait_for(lambda: (agent.metric("vigil_outbox_depth", 'uplink="receiver"') or 0) >= 18,
                 20, "18 events in the outbox")
        wait_for(lambda: (agent.metric("vigil_deliveries_total",
                                       'uplink="receiver",outcome="retry"') or 0) >= 2,
                 20, "refused deliveries to be retried")

        self.receiver.status = 503
        self.receiver.start()
        wait_for(lambda: self.receiver.requests >= 2, 20, "requests answered with 503")
        self.assertEqual(self.receiver.received(), [])

        self.receiver.status = 200
        wait_for(lambda: len(self.receiver.received()) >= 18, 30, "all 18 events")
        time.sleep(0.5)
        events = self.receiver.received()
        self.assertEqual(len(events), 18)
        self.assertEqual(len({e["id"] for e in events}), 18, "each event exactly once")
        for device in ("d1", "d2", "d3"):
            mine = [e for e in events if e["key"]["device"] == device]
            self.assertEqual([(e["kind"], e["window"]["start"]) for e in mine],
                             [("aggregate", f"2026-11-22T10:0{m}:00.000Z") if i != 1 else
                              ("alert", "2026-11-22T10:00:00.000Z")
                              for i, m in enumerate([0, 0, 1, 2, 3, 4])],
                             "events of one key in the order produced")
        wait_for(lambda: agent.metric("vigil_outbox_depth", 'uplink="receiver"') == 0, 10,
                 "an empty outbox")
        self.assertIn("retry in", agent.log())
        self.assertEqual(agent.stop(), 0)


if __name__ == "__main__":
    unittest.main()
