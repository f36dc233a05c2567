"""The local HTTP endpoint (SPEC §10) and `vigil status`: every route answers; /metrics is
valid Prometheus text (checked by Debian's `promtool`) with every metric SPEC §10 names;
`vigil status` summarises a running agent and exits 3 when none answers."""

import json
import shutil
import subprocess
import unittest
import urllib.request

from harness import T0, IntegrationTest, reading, wait_for

SPEC_METRICS = ["vigil_readings_total", "vigil_rejected_readings_total",
                "vigil_late_readings_total", "vigil_rule_evaluations_total", "vigil_events_total",
                "vigil_outbox_depth", "vigil_outbox_oldest_seconds", "vigil_deliveries_total",
                "vigil_dropped_total", "vigil_commit_duration_seconds", "vigil_mqtt_connected"]


def get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except urllib.error.URLError:
        return 0, ""  # not listening yet


class Endpoint(IntegrationTest):
    def test_routes_metrics_and_status(self):
        self.receiver.start()
        agent = self.agent().start()
        self.broker.publish("sensors/d1/temperature", [reading(50, T0), reading(52, T0 + 1000),
                                                       reading(20, T0 + 60_000)])
        wait_for(lambda: self.receiver.received(), 20, "the first events")
        port = agent.http_port
        self.assertEqual(get(port, "/healthz")[0], 200)
        self.assertEqual(get(port, "/readyz"), (200, "ready\n"))
        status, text = get(port, "/metrics")
        self.assertEqual(status, 200)
        for name in SPEC_METRICS:
            self.assertIn(f"\n{name}", "\n" + text, name)
        if shutil.which("promtool"):
            check = subprocess.run(["promtool", "check", "metrics"], input=text,
                                   capture_output=True, text=True, timeout=30)
            self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        api = json.loads(get(port, "/api/v1/status")[1])
        self.assertTrue(api["ready"])
        alerts = json.loads(get(port, "/api/v1/alerts")[1])
        self.assertEqual(alerts[0]["rule"], "temperature-high")

        out = agent.run_command("status")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("agent gw-test", out.stdout)
        self.assertIn(": connected", out.stdout)
        self.assertIn("temperature-high", out.stdout)
        self.assertEqual(agent.stop(), 0)
        none = agent.run_command("status")
        self.assertEqual(none.returncode, 3)

    def test_readyz_says_why_not(self):
        agent = self.agent()
        self.broker.stop()
        agent.start(wait_connected=False)
        status, body = wait_for(lambda: (lambda r: r if r[0] == 503 else None)(
            get(agent.http_port, "/readyz")), 20, "/readyz to answer 503")
        self.assertIn("broker not connected", body)
        self.assertEqual(agent.stop(), 0)


if __name__ == "__main__":
    unittest.main()
