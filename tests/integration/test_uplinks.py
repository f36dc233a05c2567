"""Every uplink type against the real server operators run (SPEC §9): Alertmanager
(Debian's prometheus-alertmanager), InfluxDB (Debian's influxdb 1.x), a cloud mosquitto
with TLS and client certificates (a throwaway CA made with openssl), and the HTTP sink
against a receiver that answers 400, 408, 429 with Retry-After, 500, 503, slowly, or resets
the connection. Every server listens on a free 127.0.0.1 port."""

import json
import os
import subprocess
import time
import unittest
import urllib.parse
import urllib.request

from harness import T0, VIGIL, IntegrationTest, free_port, port_open, reading, wait_for

MINUTE = 60_000
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
INFLUXD = "/usr/bin/influxd"

HOT_RULE = {
    "id": "boiler-overheat", "description": "Boiler running hot",
    "source": {"metric": "temperature"}, "group_by": ["device"],
    "window": {"type": "tumbling", "size": "1m"},
    "aggregates": {"avg": "avg(value)", "n": "count()"},
    "alert": {"when": "avg > 45", "clear_when": "avg < 40", "severity": "critical",
              "summary": "{device}: average {avg:.1f}", "labels": {"team": "heating"}},
    "emit": ["alert", "aggregate"],
}


def get_json(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


class Server:
    """A server process of the test's, stopped at cleanup."""

    def __init__(self, test, args, port, log):
        with open(log, "a") as f:
            self.proc = subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT)
        test.addCleanup(self.stop)
        wait_for(lambda: port_open(port), 30, f"{args[0]} to listen")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class Uplinks(IntegrationTest):
    def uplink_agent(self, uplinks, routes=None, rules=(HOT_RULE,)):
        agent = self.agent(rules=list(rules))
        with open(agent.config_path) as f:
            config = json.load(f)
        config["uplinks"] = uplinks
        if routes:
            config["routes"] = routes
        with open(agent.config_path, "w") as f:
            json.dump(config, f)
        return agent

    def test_alertmanager_shows_the_alert_firing_then_resolved(self):
        port = free_port()
        conf = os.path.join(self.workdir, "alertmanager.yml")
        with open(conf, "w") as f:
            f.write('route:\n  receiver: "null"\nreceivers:\n  - name: "null"\n')
        Server(self, [ALERTMANAGER, f"--config.file={conf}",
                      f"--storage.path={self.workdir}/am-data",
                      f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
               port, os.path.join(self.workdir, "alertmanager.log"))
        base = f"http://127.0.0.1:{port}"
        agent = self.uplink_agent(
            [{"name": "am", "type": "alertmanager", "url": base,
              "batch": {"max_delay": "100ms"}, "retry": {"initial": "100ms", "max": "1s"}}],
            routes=[{"kinds": ["alert"], "to": ["am"]}]).start()
        topic = "sensors/boiler-3/temperature"
        # The alert's start is an event time in the past: Alertmanager keeps it active
        # because it has no endsAt.
        now = int(time.time() * 1000) // MINUTE * MINUTE - 10 * MINUTE
        self.broker.publish(topic, [reading(50, now + 1000), reading(52, now + 2000),
                                    reading(20, now + MINUTE + 1000)])

        def active():
            return [a for a in get_json(base + "/api/v2/alerts")
                    if a["labels"].get("alertname") == "boiler-overheat"]
        alerts = wait_for(active, 20, "the alert in Alertmanager")
        a = alerts[0]
        self.assertEqual(a["labels"], {"alertname": "boiler-overheat", "severity": "critical",
                                       "agent": "gw-test", "device": "boiler-3",
                                       "team": "heating"})
        self.assertEqual(a["annotations"], {"summary": "boiler-3: average 51.0",
                                            "description": "Boiler running hot"})
        self.assertEqual(a["status"]["state"], "active")
        # The next window closes cool: resolved, with endsAt; Alertmanager drops it from the
        # active alerts.
        self.broker.publish(topic, [reading(20, now + 2 * MINUTE + 1000)])
        wait_for(lambda: not active(), 20, "Alertmanager to show the alert resolved")
        # Alertmanager may show it before the agent has read the answer and counted it.
        def delivered():
            return agent.metric("vigil_deliveries_total", 'uplink="am",outcome="delivered"')
        wait_for(lambda: (delivered() or 0) >= 2, 10, "the agent to count the second delivery")
        self.assertEqual(delivered(), 2)
        self.assertEqual(agent.stop(), 0)

    def influxdb(self):
        """A fresh influxd with database `iot`; returns its base URL and a query function."""
        port, rpc = free_port(), free_port()
        conf = os.path.join(self.workdir, "influxdb.conf")
        with open(conf, "w") as f:
            f.write(f'reporting-disabled = true\nbind-address = "127.0.0.1:{rpc}"\n'
                    f'[meta]\n  dir = "{self.workdir}/influx/meta"\n'
                    f'[data]\n  dir = "{self.workdir}/influx/data"\n'
                    f'  wal-dir = "{self.workdir}/influx/wal"\n'
                    f'[http]\n  bind-address = "127.0.0.1:{port}"\n  log-enabled = false\n')
        Server(self, [INFLUXD, "-config", conf], port, os.path.join(self.workdir, "influx.log"))
        base = f"http://127.0.0.1:{port}"

        def query(q):
            url = base + "/query?" + urllib.parse.urlencode({"db": "iot", "q": q})
            return get_json(url)
        urllib.request.urlopen(urllib.request.Request(
            base + "/query?" + urllib.parse.urlencode({"q": "CREATE DATABASE iot"}),
            method="POST"), timeout=5).read()
        return base, query

    def test_influxdb_stores_aggregates_with_escaped_tag_values(self):
        base, query = self.influxdb()
        rule = dict(HOT_RULE, id="boiler.temp", emit=["aggregate"])
        rule["aggregates"] = {"avg": "avg(value)", "n": "count()", "spread": "delta(value)"}
        agent = self.uplink_agent(
            [{"name": "influx", "type": "influxdb", "url": base + "/write?db=iot&precision=ms",
              "batch": {"max_delay": "100ms"}}],
            routes=[{"kinds": ["aggregate"], "rules": ["boiler*"], "to": ["influx"]}],
            rules=[rule]).start()
        device = 'boiler 3,"x"'
        self.broker.publish(f"sensors/{device}/temperature",
                            [reading(50, T0 + 1000), reading(53, T0 + 2000),
                             reading(20, T0 + MINUTE + 1000)])

        def rows():
            r = query('SELECT * FROM "boiler.temp"')["results"][0]
            return r.get("series")
        series = wait_for(rows, 20, "the point in InfluxDB")[0]
        point = dict(zip(series["columns"], series["values"][0]))
        self.assertEqual(point, {"time": "2026-11-22T10:01:00Z", "agent": "gw-test",
                                 "device": device, "avg": 51.5, "n": 2, "spread": 3})
        self.assertEqual(agent.stop(), 0)

    def test_influxdb_reads_back_tag_values_with_backslashes(self):
        """Tag values with backslashes, commas, spaces, equals signs and quotes, written by the
        influxdb uplink and read back from a real influxd (1.x). A backslash InfluxDB 1.x
        cannot store as such (at the end of a value, or right before a comma, space or equals
        sign) must not make it refuse the batch: it is dropped, or doubled (uplink/README.md)."""
        base, query = self.influxdb()
        rule = {"id": "boiler", "source": {"metric": "temperature"}, "group_by": ["device"],
                "window": {"type": "tumbling", "size": "1m"},
                "aggregates": {"n": "count()"}, "emit": ["aggregate"]}
        agent = self.uplink_agent(
            [{"name": "influx", "type": "influxdb", "url": base + "/write?db=iot&precision=ms",
              "batch": {"max_delay": "100ms"}, "retry": {"initial": "100ms", "max": "1s"}}],
            routes=[{"kinds": ["aggregate"], "to": ["influx"]}], rules=[rule]).start()
        # device as published → as InfluxDB 1.x keeps it
        devices = {'C:\\temp\\boiler 3,"x"=1': 'C:\\temp\\boiler 3,"x"=1',
                   '\\\\srv\\share=a b': '\\\\srv\\share=a b',
                   'tail\\': "tail",
                   'a\\ b\\,c': 'a\\\\ b\\\\,c'}
        for n, device in enumerate(devices):
            self.broker.publish(f"sensors/{device}/temperature",
                                [reading(20, T0 + n * MINUTE + 1000),
                                 reading(20, T0 + (n + 1) * MINUTE + 1000)])

        def stored():
            r = query('SELECT "n", "device" FROM "boiler"')["results"][0]
            return [dict(zip(s["columns"], v)) for s in r.get("series", []) for v in s["values"]]
        points = wait_for(lambda: len(stored()) >= len(devices) and stored(), 30,
                          "a point for every device")
        self.assertEqual(sorted(p["device"] for p in points), sorted(devices.values()))
        self.assertEqual(agent.metric("vigil_deliveries_total", 'uplink="influx",outcome="dead"'),
                         0)
        self.assertEqual(agent.stop(), 0)

    def make_certs(self, name):
        """A CA and, signed by it, a server certificate for 127.0.0.1 and a client one."""
        d = os.path.join(self.workdir, name)
        os.makedirs(d)

        def run(*args):
            subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)
        run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
            f"/CN={name} test CA", "-keyout", "ca.key", "-out", "ca.crt")
        with open(os.path.join(d, "san.cnf"), "w") as f:
            f.write("subjectAltName=IP:127.0.0.1\n")
        for who in ("server", "client"):
            run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={who}", "-keyout",
                f"{who}.key", "-out", f"{who}.csr")
            run("x509", "-req", "-in", f"{who}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-out", f"{who}.crt", "-extfile", "san.cnf")
        return d

    def cloud_broker(self, certs, require_client_certificate):
        """A second mosquitto with TLS, as the cloud broker; returns its port."""
        port = free_port()
        conf = os.path.join(self.workdir, "cloud.conf")
        with open(conf, "w") as f:
            # user root: mosquitto started as root would otherwise switch to its own user,
            # which cannot read the test's private folder.
            f.write(f"listener {port} 127.0.0.1\nallow_anonymous true\nuser root\n"
                    f"cafile {certs}/ca.crt\ncertfile {certs}/server.crt\n"
                    f"keyfile {certs}/server.key\n"
                    f"require_certificate {str(require_client_certificate).lower()}\n")
        Server(self, ["/usr/sbin/mosquitto", "-c", conf], port,
               os.path.join(self.workdir, "cloud.log"))
        return port

    def test_cloud_broker_over_tls_gets_events_on_templated_topics(self):
        certs = self.make_certs("cloud")
        port = self.cloud_broker(certs, require_client_certificate=True)
        sub = subprocess.Popen(
            ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-t", "fleet/#", "-v",
             "-q", "1", "-C", "2", "--cafile", f"{certs}/ca.crt", "--cert",
             f"{certs}/client.crt", "--key", f"{certs}/client.key", "-W", "60"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(sub.kill)
        time.sleep(0.5)  # mosquitto_sub subscribes
        tls = {"ca_file": f"{certs}/ca.crt", "cert_file": f"{certs}/client.crt",
               "key_file": f"{certs}/client.key"}
        agent = self.uplink_agent([{"name": "cloud", "type": "mqtt",
                                    "uri": f"ssl://127.0.0.1:{port}", "tls": tls,
                                    "topic": "fleet/{agent}/{kind}/{rule}/{device}",
                                    "batch": {"max_delay": "100ms"}}]).start()
        self.broker.publish("sensors/boiler-3/temperature",
                            [reading(50, T0 + 1000), reading(52, T0 + 2000),
                             reading(20, T0 + MINUTE + 1000)])
        out, err = sub.communicate(timeout=60)
        lines = out.splitlines()
        self.assertEqual(len(lines), 2, err)
        topics = [line.split(" ", 1)[0] for line in lines]
        self.assertEqual(sorted(topics), ["fleet/gw-test/aggregate/boiler-overheat/boiler-3",
                                          "fleet/gw-test/alert/boiler-overheat/boiler-3"])
        events = [json.loads(line.split(" ", 1)[1]) for line in lines]
        self.assertEqual({e["kind"] for e in events}, {"aggregate", "alert"})
        self.assertEqual(agent.stop(), 0)

    def test_cloud_broker_with_a_wrong_ca_is_a_clear_error_and_loses_nothing(self):
        certs, other = self.make_certs("cloud"), self.make_certs("other")
        port = self.cloud_broker(certs, require_client_certificate=False)
        agent = self.uplink_agent([{"name": "cloud", "type": "mqtt",
                                    "uri": f"ssl://127.0.0.1:{port}",
                                    "tls": {"ca_file": f"{other}/ca.crt"},
                                    "batch": {"max_delay": "100ms"},
                                    "retry": {"initial": "200ms", "max": "1s"}}]).start()
        self.broker.publish("sensors/boiler-3/temperature",
                            [reading(50, T0 + 1000), reading(20, T0 + MINUTE + 1000)])
        wait_for(lambda: (agent.metric("vigil_deliveries_total",
                                       'uplink="cloud",outcome="retry"') or 0) >= 2, 30,
                 "failed attempts")
        self.assertEqual(agent.metric("vigil_outbox_depth", 'uplink="cloud"'), 2)
        log = agent.log()
        self.assertIn("uplink cloud: cannot connect to ssl://127.0.0.1", log)
        self.assertRegex(log, "(?i)(certificate|ssl|tls)")
        status = json.loads(urllib.request.urlopen(
            f"http://127.0.0.1:{agent.http_port}/api/v1/status", timeout=5).read())
        cloud = [u for u in status["uplinks"] if u["name"] == "cloud"][0]
        self.assertIn("cannot connect", json.dumps(cloud))
        self.assertEqual(agent.stop(), 0)
        self.assertEqual(len(status["uplinks"]), 1)

    def test_http_outcomes_retries_dead_letters_and_outbox_retry(self):
        self.receiver.script = [
            ("status", 400),                          # permanent: dead letter
            ("status", 408),                          # retried
            ("status", 429, {"Retry-After": "1"}),    # retried after 1 s
            ("status", 500),
            ("status", 503),
            ("slow", 3),                              # the agent times out after 1 s
            ("reset",),                               # connection reset
        ]
        self.receiver.start()
        agent = self.agent(rules=[dict(HOT_RULE, emit=["aggregate"])])
        with open(agent.config_path) as f:
            config = json.load(f)
        config["uplinks"][0].update({"timeout": "1s", "batch": {"max_events": 1,
                                                                "max_delay": "10ms"},
                                     "retry": {"initial": "50ms", "max": "200ms"}})
        with open(agent.config_path, "w") as f:
            json.dump(config, f)
        agent.start()
        self.broker.publish("sensors/b1/temperature",
                            [reading(i, T0 + i * MINUTE + 1000) for i in range(4)])
        wait_for(lambda: len(self.receiver.received()) >= 2, 40, "two windows delivered")
        time.sleep(0.5)
        events = self.receiver.received()
        # The first window's batch got 400: a dead letter; the second went through every
        # transient failure, in order, and was delivered once.
        self.assertEqual([e["window"]["start"] for e in events],
                         ["2026-11-22T10:01:00.000Z", "2026-11-22T10:02:00.000Z"])
        self.assertEqual([a[0] if a[0] != "status" else a[1] for a in self.receiver.answers[:8]],
                         [400, 408, 429, 500, 503, "slow", "reset", 200])
        dead = agent.run_command("outbox", "list", "--dead")
        self.assertIn("dead receiver", dead.stdout)
        self.assertIn("HTTP 400", dead.stdout)
        self.assertIn('"start":"2026-11-22T10:00:00.000Z"', dead.stdout)
        self.assertEqual(agent.metric("vigil_deliveries_total",
                                      'uplink="receiver",outcome="dead"'), 1)
        retry = agent.run_command("outbox", "retry")
        self.assertIn("moved 1 dead letter(s) back to pending", retry.stdout)
        wait_for(lambda: len(self.receiver.received()) >= 3, 20, "the dead letter, retried")
        self.assertEqual(self.receiver.received()[2]["window"]["start"],
                         "2026-11-22T10:00:00.000Z")
        self.assertEqual(agent.stop(), 0)


class Examples(IntegrationTest):
    def test_packaged_example_configs_and_rules_are_valid(self):
        examples = os.path.join(os.path.dirname(__file__), "../../packaging/examples")
        self.agent()  # writes the rules folder the examples are checked against
        for name in sorted(os.listdir(examples)):
            if os.path.isdir(os.path.join(examples, name)):
                # A whole setup (config, rules, tables side by side): checked as it is.
                out = subprocess.run(
                    [VIGIL, "check", "--config", os.path.join(examples, name, "vigil.json")],
                    capture_output=True, text=True, timeout=30)
                self.assertEqual(out.returncode, 0, name + ": " + out.stderr)
                self.assertRegex(out.stdout, r"^ok: \d+ rules\n$")
                continue
            with open(os.path.join(examples, name)) as f:
                text = f.read().replace("${file:/etc/vigil/cloud-password}", "secret")
            config = json.loads(text)
            config["rules"]["paths"] = [os.path.join(self.workdir, "rules.d")]
            path = os.path.join(self.workdir, name)
            with open(path, "w") as f:
                json.dump(config, f)
            out = subprocess.run([VIGIL, "check", "--config", path],
                                 capture_output=True, text=True, timeout=30)
            self.assertEqual(out.returncode, 0, name + ": " + out.stderr)
            self.assertEqual(out.stdout, "ok: 1 rules\n")
        # The rules `make run` loads: one per window example and detector.
        config["rules"]["paths"] = [os.path.join(examples, "../rules.d")]
        with open(path, "w") as f:
            json.dump(config, f)
        out = subprocess.run([VIGIL, "check", "--config", path], capture_output=True, text=True,
                             timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout, "ok: 8 rules\n")


if __name__ == "__main__":
    unittest.main()
