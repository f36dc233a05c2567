"""The local HTTP endpoint (SPEC §10) and `vigil status`: every route answers; /metrics is
valid Prometheus text (checked by Debian's `promtool`) with every metric SPEC §10 names;
`vigil status` summarises a running agent and exits 3 when none answers."""

import json
import select
import shutil
import socket
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


def peak_rss_kib(pid):
    """VmHWM: the most memory the process has held resident since it started."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc status")


def post_large_body(port, size, chunked=False):
    """POSTs a body of `size` bytes and returns the status line of the answer. The body is
    sent only while the server has not answered yet: an endpoint that refuses at the headers
    answers at once, one that reads the body answers after all of it."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        length = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}"
        s.sendall(f"POST /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n{length}\r\n\r\n".encode())
        piece = b"x" * 65536
        sent = 0
        try:
            while sent < size and not select.select([s], [], [], 0)[0]:
                s.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
                sent += len(piece)
            if chunked and sent >= size:
                s.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # it answered and closed while we were still sending
        answer = b""
        try:
            while b"\r\n" not in answer:
                more = s.recv(4096)
                if not more:
                    break
                answer += more
        except ConnectionResetError:
            pass
        return answer.split(b"\r\n", 1)[0].decode(), sent


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

    def test_a_large_request_body_is_refused_unread(self):
        agent = self.agent().start()
        port = agent.http_port
        self.assertEqual(get(port, "/healthz")[0], 200)
        before = peak_rss_kib(agent.proc.pid)
        size = 64 * 1024 * 1024
        for chunked in (False, True):
            status, sent = post_large_body(port, size, chunked)
            self.assertEqual(status, "HTTP/1.1 413 Payload Too Large",
                             f"chunked={chunked}: {status!r} after {sent} bytes sent")
        grew = peak_rss_kib(agent.proc.pid) - before
        self.assertLess(grew, 16 * 1024, f"peak RSS grew by {grew} KiB for two 64 MiB bodies")
        # A body within the limit is read and answered as usual (no POST route: 404).
        status, _ = post_large_body(port, 1000)
        self.assertEqual(status, "HTTP/1.1 404 Not Found")
        # The endpoint keeps answering.
        self.assertEqual(get(port, "/healthz")[0], 200)
        self.assertEqual(get(port, "/metrics")[0], 200)
        self.assertEqual(agent.stop(), 0)

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
