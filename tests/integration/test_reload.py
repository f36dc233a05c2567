"""Reload (SPEC §7): SIGHUP and a changed rule file apply new rules without a restart;
unchanged rules keep their windows, changed ones start fresh, removed and changed rules
resolve their firing alerts, an invalid file leaves the previous rules in force. And the
systemd notify protocol: READY, WATCHDOG and RELOADING seen on a test NOTIFY_SOCKET."""

import json
import os
import signal
import socket
import unittest

from harness import T0, IntegrationTest, reading, wait_for

MINUTE = 60_000


def rule(name, alert=None):
    r = {"id": name, "source": {"metric": "t"}, "group_by": ["device"],
         "window": {"type": "tumbling", "size": "1m"},
         "aggregates": {"n": "count()", "sum": "sum(value)"}, "emit": ["aggregate"]}
    if alert:
        r["alert"] = alert
        r["emit"] = ["alert"]
    return r


class Reload(IntegrationTest):
    def write_rule(self, r):
        with open(os.path.join(self.workdir, "rules.d", r["id"] + ".json"), "w") as f:
            json.dump(r, f)

    def test_sighup_keeps_unchanged_state_and_resolves_changed_and_removed_alerts(self):
        self.receiver.start()
        agent = self.agent(rules=[rule("keep"), rule("change", {"when": "n >= 1"}),
                                  rule("gone", {"when": "n >= 1"})]).start()
        topic = "sensors/d1/t"
        self.broker.publish(topic, [reading(1, T0 + 1000), reading(2, T0 + MINUTE + 1000),
                                    reading(3, T0 + MINUTE + 2000)])
        wait_for(lambda: len([e for e in self.receiver.received()
                              if e.get("state") == "firing"]) == 2, 20, "two alerts firing")

        self.write_rule(rule("change", {"when": "n >= 5"}))
        os.remove(os.path.join(self.workdir, "rules.d", "gone.json"))
        self.write_rule(rule("new"))
        agent.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "reload: 3 rule(s) in force" in agent.log(), 20, "the reload")
        self.assertIn("kept the state of 1 key(s); 2 changed or removed rule(s) start fresh; "
                      "resolved 2 of their firing alert(s)", agent.log())
        resolved = wait_for(lambda: sorted(e["rule"] for e in self.receiver.received()
                                           if e.get("state") == "resolved"), 20, "resolutions")
        self.assertEqual(resolved, ["change", "gone"])

        # "keep" still has the two readings of 10:01 from before the reload.
        self.broker.publish(topic, [reading(4, T0 + 2 * MINUTE + 1000)])
        def keep_events():
            return [e for e in self.receiver.received() if e["rule"] == "keep"]
        wait_for(lambda: len(keep_events()) >= 2, 20, "keep's second window")
        self.assertEqual(keep_events()[1]["values"], {"n": 2, "sum": 5.0})

        # An invalid file: logged, the previous rules stay in force.
        with open(os.path.join(self.workdir, "rules.d", "broken.json"), "w") as f:
            f.write('{"id": "broken", "source": {"metric": "t"}, "window": {"type": "nope"}}')
        agent.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "reload: invalid rules; the previous rules stay in force" in agent.log(),
                 20, "the refusal")
        self.assertIn('broken.json: /window/type: unknown window type "nope"', agent.log())
        self.broker.publish(topic, [reading(5, T0 + 3 * MINUTE + 1000)])
        wait_for(lambda: len(keep_events()) >= 3, 20, "keep goes on")
        new = wait_for(lambda: [e for e in self.receiver.received() if e["rule"] == "new"], 20,
                       "the new rule's first window")
        self.assertEqual(new[0]["values"], {"n": 1, "sum": 4.0}, "it started after the reload")
        self.assertEqual(agent.stop(), 0)

    def test_a_changed_rule_file_reloads_without_a_signal(self):
        agent = self.agent(rules=[rule("keep")]).start()
        self.write_rule(rule("added"))
        wait_for(lambda: "reload: 2 rule(s) in force" in agent.log(), 20, "the file reload")
        self.assertEqual(agent.stop(), 0)

    def test_log_level_applies_other_config_changes_need_a_restart(self):
        agent = self.agent(rules=[rule("keep")]).start()
        with open(agent.config_path) as f:
            config = json.load(f)
        config["agent"]["log_level"] = "warning"
        config["store"]["commit_interval"] = "1s"
        with open(agent.config_path, "w") as f:
            json.dump(config, f)
        agent.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "changed outside agent.log_level: those changes need a restart"
                 in agent.log(), 20, "the restart notice")
        self.assertIn("reload: log level warning", agent.log())
        self.assertEqual(agent.stop(), 0)
        self.assertNotIn("info: stopped", agent.log().split("log level warning")[1])

    def test_systemd_notify_ready_watchdog_and_reloading(self):
        path = os.path.join(self.workdir, "notify.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.settimeout(10)
        self.addCleanup(sock.close)
        agent = self.agent().start(env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"})
        seen = []

        def receive_until(word):
            while not any(word in m for m in seen):
                seen.append(sock.recv(4096).decode())
            return True
        self.assertTrue(receive_until("READY=1"))
        self.assertTrue(receive_until("WATCHDOG=1"))
        agent.proc.send_signal(signal.SIGHUP)
        self.assertTrue(receive_until("RELOADING=1"))
        self.assertEqual(agent.stop(), 0)
        self.assertTrue(receive_until("STOPPING=1"))


if __name__ == "__main__":
    unittest.main()
