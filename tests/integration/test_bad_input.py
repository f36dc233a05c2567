"""Bad input gets a clear error and loses nothing: malformed messages are counted by reason,
logged and skipped while good readings go on; invalid rules or config stop start-up with a
message naming file, place and problem; `vigil check` lists every error."""

import json
import os
import subprocess
import unittest

from harness import T0, VIGIL, IntegrationTest, reading, wait_for

MINUTE = 60_000


class BadMessages(IntegrationTest):
    def test_bad_messages_are_counted_by_reason_and_good_ones_kept(self):
        self.receiver.start()
        agent = self.agent().start()
        topic = "sensors/d1/temperature"
        self.broker.publish(topic, [
            reading(40, T0 + 1000),
            "{not json",                              # json
            {"ts": T0 + 2000},                        # value: missing
            {"value": "warm", "ts": T0 + 2000},       # value: not a number
            {"value": None, "ts": T0 + 2000},         # value: null
            {"value": "NaN", "ts": T0 + 2000},        # nan
            {"value": 1, "ts": "yesterday"},          # time
            reading(44, T0 + 3000),
            [reading(46, T0 + 4000), {"value": []}],  # a batch: one good, one bad
        ])
        self.broker.publish("elsewhere/d1", [reading(1, T0)])   # no template matches: topic
        self.broker.publish(topic, [reading(1, T0 + MINUTE)])  # closes the first window

        events = wait_for(lambda: self.receiver.received(), 20, "the aggregate")
        self.assertEqual(events[0]["values"], {"avg": 43.333333333333336, "max": 46.0, "n": 3})
        self.assertEqual(agent.metric("vigil_readings_total"), 4)
        # "elsewhere/…" is not subscribed, so only what reaches the agent is counted.
        for reason, n in {"json": 1, "value": 4, "nan": 1, "time": 1}.items():
            self.assertEqual(agent.metric("vigil_rejected_readings_total", f'reason="{reason}"'), n,
                             reason)
        log = agent.log()
        self.assertIn("rejected reading (json) on sensors/d1/temperature", log)
        self.assertIn("rejected reading (value)", log)
        self.assertEqual(agent.stop(), 0)

    def test_replay_reports_bad_lines_and_goes_on(self):
        # Live, the broker only delivers topics that match a subscription's filter; a topic that
        # matches no template reaches the decoder in replay input.
        agent = self.agent()
        lines = [
            json.dumps({"topic": "elsewhere/d1", "payload": reading(1, T0)}),
            json.dumps({"topic": "sensors/d1/temperature", "payload": reading(50, T0 + 1000)}),
            "this line is not JSON",
            json.dumps({"topic": "sensors/d1/temperature", "payload": "{broken"}),
            json.dumps({"topic": "sensors/d1/temperature", "payload": reading(52, T0 + 2000)}),
        ]
        out = agent.run_command("replay", input_text="\n".join(lines) + "\n")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("line 1: rejected (topic)", out.stderr)
        self.assertIn("line 3:", out.stderr)
        self.assertIn("line 4: rejected (json)", out.stderr)
        events = [json.loads(line) for line in out.stdout.splitlines()]
        self.assertEqual([(e["kind"], e.get("state")) for e in events],
                         [("aggregate", None), ("alert", "firing")])
        self.assertEqual(events[0]["values"], {"avg": 51.0, "max": 52.0, "n": 2})


class BadStartup(IntegrationTest):
    def test_invalid_rule_file_stops_startup_with_a_clear_error(self):
        agent = self.agent()
        with open(os.path.join(self.workdir, "rules.d", "broken.json"), "w") as f:
            json.dump({"id": "broken", "source": {"metric": "t"}, "group_by": ["device"],
                       "window": {"type": "tumbling", "size": "1m"},
                       "aggregates": {"avg": "avg(value)"},
                       "alert": {"when": "avgg > 1"}}, f)
        proc = subprocess.run([VIGIL, "run", "--config", agent.config_path], capture_output=True,
                              text=True, timeout=30)
        self.assertEqual(proc.returncode, 78)
        self.assertIn('broken.json: /alert/when: col 1: unknown name "avgg" (aggregates: avg',
                      proc.stderr)

        check = agent.run_command("check")
        self.assertEqual(check.returncode, 1)
        self.assertEqual(check.stdout, "")
        self.assertIn('/alert/when: col 1: unknown name "avgg"', check.stderr)

    def test_rule_file_with_bad_json_names_line_and_column(self):
        agent = self.agent()
        with open(os.path.join(self.workdir, "rules.d", "typo.json"), "w") as f:
            f.write('{\n  "id": "typo",\n  "source": { "metric": "t" }\n  "window": {}\n}\n')
        check = agent.run_command("check")
        self.assertEqual(check.returncode, 1)
        self.assertIn("typo.json:4:3: invalid JSON", check.stderr)

    def test_invalid_config_stops_startup(self):
        path = os.path.join(self.workdir, "bad.json")
        with open(path, "w") as f:
            json.dump({"mqtt": {"subscriptions": []}, "store": {"commit_interval": "often"}}, f)
        proc = subprocess.run([VIGIL, "run", "--config", path], capture_output=True, text=True,
                              timeout=30)
        self.assertEqual(proc.returncode, 78)
        self.assertIn("bad.json: /mqtt/subscriptions: at least one subscription is needed",
                      proc.stderr)
        self.assertIn("bad.json: /store/commit_interval: must be a duration", proc.stderr)

    def test_tls_block_with_a_plaintext_broker_uri_is_refused(self):
        """A `tls` block with tcp:// would connect in plaintext: check and run refuse it,
        naming the pointer, for the broker and for an mqtt uplink."""
        agent = self.agent()
        with open(agent.config_path) as f:
            config = json.load(f)
        config["mqtt"]["tls"] = {"ca_file": "ca.pem"}  # uri stays tcp://127.0.0.1:port
        config["uplinks"] = [{"name": "cloud", "type": "mqtt", "uri": "mqtt://127.0.0.1:1",
                              "tls": {"ca_file": "ca.pem"}}]
        with open(agent.config_path, "w") as f:
            json.dump(config, f)
        check = agent.run_command("check")
        self.assertEqual(check.returncode, 1)
        self.assertEqual(check.stdout, "")
        self.assertIn(f"{agent.config_path}: /mqtt/tls: given for a plaintext tcp:// broker, "
                      "which would not use it: use an ssl:// or mqtts:// URI for TLS",
                      check.stderr)
        self.assertIn(f"{agent.config_path}: /uplinks/0/tls: given for a plaintext mqtt:// "
                      "broker", check.stderr)
        proc = subprocess.run([VIGIL, "run", "--config", agent.config_path],
                              capture_output=True, text=True, timeout=30)
        self.assertEqual(proc.returncode, 78)
        self.assertIn("/mqtt/tls: given for a plaintext tcp:// broker", proc.stderr)
        # Without the uplink's block, and with the broker's URI made ssl://, the config is valid.
        config["mqtt"]["uri"] = config["mqtt"]["uri"].replace("tcp://", "ssl://")
        del config["uplinks"][0]["tls"]
        with open(agent.config_path, "w") as f:
            json.dump(config, f)
        check = agent.run_command("check")
        self.assertEqual(check.returncode, 0, check.stderr)

    def test_check_accepts_a_valid_config(self):
        agent = self.agent()
        check = agent.run_command("check")
        self.assertEqual(check.returncode, 0, check.stderr)
        self.assertEqual(check.stdout, "ok: 1 rules\n")
        self.assertEqual(check.stderr, "")

    def test_unreachable_broker_keeps_retrying(self):
        agent = self.agent()
        self.broker.stop()
        agent.start(wait_connected=False)
        wait_for(lambda: agent.metric("vigil_mqtt_connected") == 0, 20, "the endpoint")
        self.assertIsNone(agent.proc.poll(), "the agent keeps running without a broker")
        self.assertEqual(agent.stop(), 0)


if __name__ == "__main__":
    unittest.main()
