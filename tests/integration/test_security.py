"""Secure defaults (README "Security"): the state folder 0700 and its files 0600; the local
endpoint on loopback unless configured; no secret (a ${file:} token, a ${env:} password, a
token in a URL, credentials in the broker URI) in the log, `vigil status`, the endpoint or
`vigil check`'s errors, even when an upstream echoes it back; TLS verified by default."""

import http.server
import json
import os
import socket
import ssl
import stat
import subprocess
import threading
import urllib.request

from harness import T0, VIGIL, IntegrationTest, free_port, reading, wait_for

TOKEN = "file-token-5f2a9c"
PASSWORD = "env-password-81d3"
QUERY_TOKEN = "query-token-77ab"
URI_PASSWORD = "uri-password-90cc"
SECRETS = [TOKEN, PASSWORD, QUERY_TOKEN, URI_PASSWORD]


class EchoingReceiver:
    """An uplink that refuses every batch with 401 and echoes the request's Authorization
    header and URL in its answer, as a careless proxy would (optionally over TLS)."""

    def __init__(self, tls_files=None):
        self.port = free_port()
        self.requests = 0
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests += 1
                body = f"denied {self.path} for {self.headers.get('Authorization')}\n".encode()
                self.send_response(401)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        if tls_files:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls_files)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class SecureDefaults(IntegrationTest):
    def setUp(self):
        super().setUp()
        with open(os.path.join(self.workdir, "token"), "w") as f:
            f.write(TOKEN + "\n")
        os.environ["VIGIL_TEST_MQTT_PASSWORD"] = PASSWORD
        self.addCleanup(os.environ.pop, "VIGIL_TEST_MQTT_PASSWORD", None)

    def uplink(self, url, **more):
        return dict({"name": "cloud", "type": "http", "url": url,
                     "headers": {"Authorization": "Bearer ${file:token}"},
                     "batch": {"max_events": 10, "max_delay": "50ms"},
                     "retry": {"initial": "100ms", "max": "200ms"}, "timeout": "2s"}, **more)

    def mqtt(self, uri=None):
        return {"uri": uri or f"tcp://127.0.0.1:{self.broker.port}", "client_id": "vigil-test",
                "username": "vigil", "password": "${env:VIGIL_TEST_MQTT_PASSWORD}",
                "subscriptions": [{"topic": "sensors/{device}/{metric}", "qos": 1,
                                   "payload": {"value": "value", "time": "ts"}}]}

    def assert_no_secret(self, where, text):
        for secret in SECRETS:
            self.assertNotIn(secret, text, f"{secret} shown in {where}")

    def test_state_is_private(self):
        agent = self.agent().start()
        self.broker.publish("sensors/d1/temperature", [reading(40, T0)])
        wait_for(lambda: agent.metric("vigil_readings_total") == 1, 20, "the reading")
        state = os.path.join(self.workdir, "state")
        self.assertEqual(stat.S_IMODE(os.stat(state).st_mode), 0o700)
        files = sorted(os.listdir(state))
        self.assertIn("vigil.db", files)
        self.assertIn("journal.db", files)
        for name in files:
            mode = stat.S_IMODE(os.stat(os.path.join(state, name)).st_mode)
            self.assertEqual(mode, 0o600, name)
        self.assertEqual(agent.stop(), 0)

    def test_endpoint_listens_on_loopback_by_default(self):
        agent = self.agent()
        with open(agent.config_path) as f:
            config = json.load(f)
        del config["http"]  # the default: 127.0.0.1:9460
        with open(agent.config_path, "w") as f:
            json.dump(config, f)
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", 9460)) == 0:
                self.skipTest("something else listens on 9460")
        agent.http_port = 9460
        agent.start()
        # The listening socket is bound to 127.0.0.1 (0100007F), not to every address.
        listening = []
        with open("/proc/net/tcp") as f:
            for line in f.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                if state == "0A" and int(local.split(":")[1], 16) == 9460:
                    listening.append(local.split(":")[0])
        self.assertEqual(listening, ["0100007F"])
        self.assertEqual(agent.stop(), 0)

    def test_secrets_are_never_shown(self):
        echo = EchoingReceiver()
        self.addCleanup(echo.stop)
        url = f"http://127.0.0.1:{echo.port}/events?tenant=t1&token={QUERY_TOKEN}"
        agent = self.agent(extra={"mqtt": self.mqtt(), "uplinks": [self.uplink(url)]}).start()
        self.broker.publish("sensors/d1/temperature", [reading(40, T0), reading(41, T0 + 61_000)])
        wait_for(lambda: echo.requests >= 1, 20, "the uplink to be refused")
        wait_for(lambda: agent.metric("vigil_deliveries_total", 'uplink="cloud",outcome="dead"'),
                 20, "the dead letter")

        status = agent.run_command("status")
        self.assertEqual(status.returncode, 0, status.stderr)
        self.assertIn("last error: HTTP 401: denied", status.stdout)  # the echo, redacted
        self.assertIn("***", status.stdout)
        self.assert_no_secret("vigil status", status.stdout + status.stderr)
        base = f"http://127.0.0.1:{agent.http_port}"
        for path in ["/api/v1/status", "/metrics", "/readyz", "/api/v1/alerts"]:
            try:
                with urllib.request.urlopen(base + path, timeout=5) as r:
                    body = r.read().decode()
            except urllib.error.HTTPError as e:
                body = e.read().decode()
            self.assert_no_secret(path, body)
        self.assertEqual(agent.stop(), 0)
        log = agent.log()
        self.assertIn("HTTP 401: denied /events?tenant=t1&token=*** for ***", log)
        self.assert_no_secret("the log", log)

    def test_credentials_in_the_broker_uri_are_not_shown(self):
        uri = f"tcp://vigil:{URI_PASSWORD}@127.0.0.1:{free_port()}"  # nothing listens
        agent = self.agent(extra={"mqtt": self.mqtt(uri)})
        agent.start(wait_connected=False)
        wait_for(lambda: "mqtt: cannot connect" in agent.log(), 20, "a failed connect")
        status = agent.run_command("status")
        self.assertIn("broker     tcp://vigil:***@127.0.0.1", status.stdout)
        self.assert_no_secret("vigil status", status.stdout)
        with urllib.request.urlopen(f"http://127.0.0.1:{agent.http_port}/api/v1/status") as r:
            self.assert_no_secret("/api/v1/status", r.read().decode())
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{agent.http_port}/readyz", timeout=5)
        except urllib.error.HTTPError as e:
            self.assert_no_secret("/readyz", e.read().decode())
        self.assertEqual(agent.stop(), 0)
        self.assert_no_secret("the log", agent.log())

    def test_errors_do_not_quote_secrets(self):
        agent = self.agent(extra={"agent": {"id": "gw-test", "state_dir": "state",
                                            "log_level": "${env:VIGIL_TEST_MQTT_PASSWORD}"},
                                  "mqtt": self.mqtt()})
        check = agent.run_command("check")
        self.assertEqual(check.returncode, 1)
        self.assertIn('/agent/log_level: unknown level "***"', check.stderr)
        self.assert_no_secret("vigil check", check.stdout + check.stderr)
        run = subprocess.run([VIGIL, "run", "--config", agent.config_path], capture_output=True,
                             text=True, timeout=30)
        self.assertEqual(run.returncode, 78)
        self.assert_no_secret("vigil run", run.stdout + run.stderr)

    def test_tls_is_verified_by_default(self):
        d = os.path.join(self.workdir, "tls")
        os.makedirs(d)
        with open(os.path.join(d, "san.cnf"), "w") as f:
            f.write("subjectAltName=IP:127.0.0.1\n")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=self-signed", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", "server.key", "-out", "server.crt"],
                       cwd=d, check=True, capture_output=True)
        server = EchoingReceiver((os.path.join(d, "server.crt"), os.path.join(d, "server.key")))
        self.addCleanup(server.stop)
        url = f"https://127.0.0.1:{server.port}/events"
        agent = self.agent(extra={"uplinks": [self.uplink(url)]}).start()
        self.broker.publish("sensors/d1/temperature", [reading(40, T0), reading(41, T0 + 61_000)])
        wait_for(lambda: agent.metric("vigil_deliveries_total", 'uplink="cloud",outcome="retry"'),
                 20, "a failed delivery")
        # The self-signed certificate is refused: no request reaches the server, the events
        # wait in the outbox.
        self.assertEqual(server.requests, 0)
        self.assertGreater(agent.metric("vigil_outbox_depth", 'uplink="cloud"'), 0)
        self.assertRegex(agent.log(), r"uplink cloud: .*(SSL|certificate)")
        self.assertEqual(agent.stop(), 0)

        # Only insecure_skip_verify turns it off, and says so.
        agent = self.agent(extra={"uplinks": [self.uplink(
            url, tls={"insecure_skip_verify": True})]}).start()
        wait_for(lambda: server.requests >= 1, 20, "a request over unverified TLS")
        self.assertIn("tls.insecure_skip_verify is on", agent.log())
        self.assertEqual(agent.stop(), 0)


if __name__ == "__main__":
    import unittest
    unittest.main()
