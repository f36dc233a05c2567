"""The system clock steps back and forward under a running agent (an NTP correction, a gateway
without a battery-backed clock, a manual change), with libfaketime (Debian's faketime) moving
only the agent's wall clock while its monotonic clock goes on. Commits, `absent` and delivery
go on through a step back; a step forward drops nothing as expired (store.ttl); every step is
logged and counted, and every event reaches the receiver once the uplink is back."""

import os
import time
import unittest

from harness import IntegrationTest, wait_for

LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
EVERY_RULE = {"id": "every", "source": {"metric": "t"}, "group_by": ["device"],
              "window": {"type": "count", "count": 1},
              "aggregates": {"v": "last(value)"}, "emit": ["aggregate"]}
GONE_RULE = {"id": "gone", "source": {"metric": "t"}, "group_by": ["device"],
             "detector": {"method": "absent", "for": "2s"}, "alert": {"severity": "warning"}}


@unittest.skipUnless(os.path.exists(LIBFAKETIME), "needs Debian's faketime (libfaketime)")
class ClockSteps(IntegrationTest):
    def test_steps_back_and_forward_lose_nothing(self):
        offset = os.path.join(self.workdir, "faketime")
        with open(offset, "w") as f:
            f.write("+0\n")

        def step(seconds):
            with open(offset, "w") as f:
                f.write(f"{seconds:+d}\n")

        self.receiver.status = 503  # events stay in the outbox: the TTL's business
        self.receiver.start()
        agent = self.agent(rules=[EVERY_RULE, GONE_RULE],
                           extra={"store": {"commit_interval": "50ms", "ttl": "1h"}})
        # Under AddressSanitizer (make test-sanitize) libfaketime comes before its runtime.
        asan = os.environ.get("ASAN_OPTIONS", "")
        agent.start(env={"LD_PRELOAD": LIBFAKETIME, "FAKETIME_TIMESTAMP_FILE": offset,
                         "FAKETIME_NO_CACHE": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1",
                         "ASAN_OPTIONS": (asan + ":" if asan else "") + "verify_asan_link_order=0"})
        published = 0

        def publish(device, n):
            nonlocal published
            now = int(time.time() * 1000)
            self.broker.publish(f"sensors/{device}/t",
                                [{"value": i, "ts": now + i} for i in range(n)])
            published += n

        def committed():
            return agent.metric("vigil_events_total", 'kind="aggregate"') or 0

        publish("a", 5)
        publish("b", 5)
        wait_for(lambda: committed() == 10, 20, "the first ten aggregates committed")

        step(-3600)  # an hour back
        wait_for(lambda: "stepped back" in agent.log(), 20, "the step back to be seen")
        publish("a", 5)
        # Commits go on (they waited for the clock to pass where it was before).
        wait_for(lambda: committed() == 15, 20, "aggregates committed after the step back")
        # `b` is silent: `absent` fires two seconds on, not an hour on.
        wait_for(lambda: any("alert firing: gone" in line and "device=b" in line
                             for line in agent.log().splitlines()), 20, "absent to fire for b")

        step(+7200)  # two hours ahead of the true time: every outbox row would look 3 h old
        wait_for(lambda: "stepped forward" in agent.log(), 20, "the step forward to be seen")
        publish("b", 5)
        wait_for(lambda: committed() == 20, 20, "aggregates committed after the step forward")
        time.sleep(2)  # a few rounds of retention and TTL
        self.assertEqual(agent.metric("vigil_dropped_total", 'what="ttl"'), 0,
                         "a step forward expired nothing")
        self.assertGreaterEqual(agent.metric("vigil_clock_steps_total"), 2)

        self.receiver.status = 200
        wait_for(lambda: agent.metric("vigil_outbox_depth", 'uplink="receiver"') == 0, 30,
                 "the outbox to drain")
        aggregates = [e for e in self.receiver.received() if e["kind"] == "aggregate"]
        self.assertEqual(len({e["id"] for e in aggregates}), published, "every reading's event")
        self.assertEqual(agent.stop(), 0)


if __name__ == "__main__":
    unittest.main()
