"""Real parts for integration tests: mosquitto on a free loopback port, an HTTP receiver,
and the vigil binary (VIGIL_BIN) with its own config, rules and state folder.

Everything listens on 127.0.0.1 only; every wait is bounded; everything is stopped in
tearDown even when a test fails."""

import http.server
import json
import os
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.request

VIGIL = os.environ.get("VIGIL_BIN", os.path.join(os.path.dirname(__file__), "../../build/agent/vigil"))
MOSQUITTO = "/usr/sbin/mosquitto"
T0 = 1795341600000  # 2026-11-22T10:00:00Z in ms: event times in tests start here


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class Broker:
    """A mosquitto of our own, restartable on the same port."""

    def __init__(self, workdir):
        self.port = free_port()
        self.conf = os.path.join(workdir, "mosquitto.conf")
        self.log = os.path.join(workdir, "mosquitto.log")
        with open(self.conf, "w") as f:
            f.write(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                    "persistence false\nmax_queued_messages 100000\n")
        self.proc = None
        self.start()

    def start(self):
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen([MOSQUITTO, "-c", self.conf],
                                         stdout=subprocess.DEVNULL, stderr=log)
        wait_for(lambda: port_open(self.port), 10, "mosquitto to listen")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        wait_for(lambda: not port_open(self.port), 10, "mosquitto to stop")

    def publish(self, topic, payloads, qos=1):
        """Publishes each payload (str, or JSON-encoded otherwise) as one message, in order."""
        lines = "".join((p if isinstance(p, str) else json.dumps(p)) + "\n" for p in payloads)
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.port), "-q", str(qos),
                        "-t", topic, "-l"], input=lines.encode(), check=True, timeout=60)


class RawMqtt:
    """A bare MQTT 3.1.1 publisher (QoS 1): any topic and payload bytes (mosquitto_pub starts a
    process per topic and refuses bytes that are not UTF-8), tens of thousands of messages a
    second: publishes are buffered and sent, their PUBACKs read, every `batch` messages."""

    def __init__(self, port, client_id, batch=500):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.batch = batch
        self.next_id = 1
        self.unacked = 0
        self.out = bytearray()
        body = self._str(b"MQTT") + bytes([4, 0x02]) + struct.pack(">H", 60) + self._str(client_id.encode())
        self.sock.sendall(bytes([0x10]) + self._len(len(body)) + body)
        assert self._read(4) == b"\x20\x02\x00\x00", "CONNACK"

    @staticmethod
    def _str(b):
        return struct.pack(">H", len(b)) + b

    @staticmethod
    def _len(n):
        out = bytearray()
        while True:
            byte, n = n % 128, n // 128
            out.append(byte | (0x80 if n else 0))
            if not n:
                return bytes(out)

    def _read(self, n):
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("broker closed the connection")
            data += chunk
        return data

    def publish(self, topic, payload):
        topic = topic if isinstance(topic, bytes) else topic.encode()
        payload = payload if isinstance(payload, bytes) else payload.encode()
        body = self._str(topic) + struct.pack(">H", self.next_id) + payload
        self.next_id = self.next_id % 65535 + 1
        self.out += bytes([0x32]) + self._len(len(body)) + body
        self.unacked += 1
        if self.unacked >= self.batch:
            self.drain()

    def drain(self):
        """Sends what is buffered and reads every PUBACK: the broker has it all."""
        self.sock.sendall(self.out)
        self.out.clear()
        acks = self._read(4 * self.unacked)
        assert all(acks[i] == 0x40 for i in range(0, len(acks), 4)), "PUBACK"
        self.unacked = 0

    def close(self):
        self.drain()
        self.sock.sendall(b"\xe0\x00")
        self.sock.close()


class Receiver:
    """An HTTP receiver: records the events of every batch it accepts, in arrival order.
    `status` is what it answers (200, or e.g. 503); stop() closes the port (refusing)."""

    def __init__(self, port=None):
        self.port = port or free_port()
        self.status = 200
        # Scripted answers, one a request: ("status", code[, headers]), ("slow", seconds),
        # ("reset",). When it is empty the receiver answers `status`.
        self.script = []
        self.answers = []
        self.events = []
        self.requests = 0
        self.lock = threading.Lock()
        self.server = None

    def start(self):
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.requests += 1
                    # The next scripted answer, else `status`.
                    action = receiver.script.pop(0) if receiver.script else ("status", receiver.status)
                    if action[0] == "status" and 200 <= action[1] < 300:
                        receiver.events.extend(json.loads(body))
                    receiver.answers.append(action)
                if action[0] == "reset":  # close the connection without answering
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if action[0] == "slow":  # answer only after the client gave up
                    time.sleep(action[1])
                    action = ("status", 200)
                self.send_response(action[1])
                for name, value in (action[2] if len(action) > 2 else {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def received(self):
        with self.lock:
            return list(self.events)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/events"


TEMPERATURE_RULE = {
    "id": "temperature-high",
    "source": {"metric": "temperature"},
    "group_by": ["device"],
    "window": {"type": "tumbling", "size": "1m"},
    "aggregates": {"avg": "avg(value)", "max": "max(value)", "n": "count()"},
    "alert": {"when": "avg > 45 && n >= 2", "clear_when": "avg < 40", "severity": "critical",
              "summary": "{device}: average {avg:.1f}"},
    "emit": ["alert", "aggregate"],
}


class Agent:
    """The vigil daemon with a config of its own in `workdir`."""

    def __init__(self, workdir, broker, uplink_url=None, rules=(TEMPERATURE_RULE,), extra=None):
        self.workdir = workdir
        self.http_port = free_port()
        self.config_path = os.path.join(workdir, "vigil.json")
        rules_dir = os.path.join(workdir, "rules.d")
        os.makedirs(rules_dir, exist_ok=True)
        for rule in rules:
            with open(os.path.join(rules_dir, rule["id"] + ".json"), "w") as f:
                json.dump(rule, f)
        config = {
            "agent": {"id": "gw-test", "state_dir": "state", "log_level": "debug"},
            "mqtt": {"uri": f"tcp://127.0.0.1:{broker.port}", "client_id": "vigil-test",
                     "subscriptions": [{"topic": "sensors/{device}/{metric}", "qos": 1,
                                        "payload": {"format": "json", "value": "value",
                                                    "time": "ts", "time_unit": "ms"}}]},
            "rules": {"paths": ["rules.d"]},
            "store": {"commit_interval": "50ms"},
            "http": {"listen": f"127.0.0.1:{self.http_port}"},
        }
        if uplink_url:
            config["uplinks"] = [{"name": "receiver", "type": "http", "url": uplink_url,
                                  "batch": {"max_events": 100, "max_delay": "100ms"},
                                  "retry": {"initial": "100ms", "max": "500ms"},
                                  "timeout": "2s"}]
        for key, value in (extra or {}).items():
            config[key] = value
        with open(self.config_path, "w") as f:
            json.dump(config, f, indent=2)
        self.log_path = os.path.join(workdir, "vigil.log")
        self.proc = None

    def start(self, wait_connected=True, env=None):
        with open(self.log_path, "a") as log:
            self.proc = subprocess.Popen([VIGIL, "run", "--config", self.config_path],
                                         stdout=subprocess.DEVNULL, stderr=log,
                                         env=dict(os.environ, **(env or {})))
        if wait_connected:
            wait_for(lambda: self.proc.poll() is not None or self.metric("vigil_mqtt_connected") == 1,
                     20, "the agent to connect")
            if self.proc.poll() is not None:
                raise AssertionError(f"vigil exited with {self.proc.returncode}:\n{self.log()[-2000:]}")
        return self

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait(5)
        self.proc = None
        return rc

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def metrics(self):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/metrics", timeout=2) as r:
                return r.read().decode()
        except OSError:
            return ""

    def metric(self, name, labels=""):
        """The value of one series, e.g. metric("vigil_rejected_readings_total", 'reason="json"')."""
        want = name + ("{" + labels + "}" if labels else "")
        for line in self.metrics().splitlines():
            if line.startswith("#"):
                continue
            series, _, value = line.rpartition(" ")
            if series == want:
                return float(value)
        return None

    def run_command(self, *args, input_text=None):
        return subprocess.run([VIGIL, *args, "--config", self.config_path], input=input_text,
                              capture_output=True, text=True, timeout=60)


def reading(value, t_ms):
    return {"value": value, "ts": t_ms}


class IntegrationTest(unittest.TestCase):
    """Gives each test a temp folder, a broker and a receiver, and cleans up after it."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="vigil-it-")
        self.workdir = self.tmp.name
        self.broker = Broker(self.workdir)
        self.receiver = Receiver()
        self.agents = []
        self.addCleanup(self.cleanup)

    def cleanup(self):
        for agent in self.agents:
            agent.stop(signal.SIGKILL)
            # ctest shows this only when the test fails (--output-on-failure).
            if os.path.exists(agent.log_path):
                print("---- vigil log (last 4000 bytes) ----")
                print(agent.log()[-4000:])
        self.receiver.stop()
        self.broker.stop()
        self.tmp.cleanup()

    def agent(self, **kwargs):
        kwargs.setdefault("uplink_url", self.receiver.url)
        a = Agent(self.workdir, self.broker, **kwargs)
        self.agents.append(a)
        return a
