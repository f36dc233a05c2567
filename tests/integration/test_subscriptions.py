"""What the agent asks of the broker (agent/README.md): a subscription the broker refuses
(SUBACK 0x80, from mosquitto's dynamic-security ACLs) is logged and counted while the others
go on; QoS 2 subscriptions with `ack: after_commit` are made at QoS 1, so a crash inside the
message callback loses nothing (with QoS 2 Paho acknowledges on receipt)."""

import base64
import hashlib
import json
import os
import sqlite3
import subprocess
import unittest

from harness import T0, IntegrationTest, reading, wait_for

S = 1000
MINUTE = 60 * S
DYNSEC = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so"

TEN_RULE = {"id": "ten", "source": {"metric": "t"}, "group_by": ["device"],
            "window": {"type": "tumbling", "size": "1m"},
            "aggregates": {"n": "count()", "sum": "sum(value)"}, "emit": ["aggregate"]}


def dynsec_client(username, password, role):
    """A client of mosquitto's dynamic-security plugin (PBKDF2-SHA512, as mosquitto_ctrl)."""
    salt = os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, 101, 64)
    return {"username": username, "password": base64.b64encode(digest).decode(),
            "salt": base64.b64encode(salt).decode(), "iterations": 101,
            "roles": [{"rolename": role}]}


def journal_rows(workdir):
    db = sqlite3.connect(os.path.join(workdir, "state", "journal.db"))
    try:
        return db.execute("SELECT topic, payload FROM journal ORDER BY seq").fetchall()
    finally:
        db.close()


@unittest.skipUnless(os.path.exists(DYNSEC), "needs mosquitto's dynamic-security plugin")
class RefusedSubscription(IntegrationTest):
    def use_acl(self, vigil_reads):
        """Restarts the test's broker with dynamic security: user `vigil` may subscribe to
        the filters in `vigil_reads`, user `pub` may publish anywhere."""
        path = os.path.join(self.workdir, "dynsec.json")
        with open(path, "w") as f:
            json.dump({"clients": [dynsec_client("vigil", "vigil-pw", "reader"),
                                   dynsec_client("pub", "pub-pw", "writer")],
                       "roles": [{"rolename": "reader", "acls": [
                                     {"acltype": "subscribePattern", "topic": t, "allow": True}
                                     for t in vigil_reads]},
                                 {"rolename": "writer", "acls": [
                                     {"acltype": "publishClientSend", "topic": "#",
                                      "allow": True}]}],
                       "defaultACLAccess": {"publishClientSend": False,
                                            "publishClientReceive": True, "subscribe": False,
                                            "unsubscribe": True}}, f)
        # Started as root, mosquitto reads the plugin's file as user mosquitto.
        os.chmod(self.workdir, 0o711)
        os.chmod(path, 0o644)
        self.broker.stop()
        with open(self.broker.conf, "w") as f:
            f.write(f"listener {self.broker.port} 127.0.0.1\nallow_anonymous false\n"
                    f"plugin {DYNSEC}\nplugin_opt_config_file {path}\n"
                    "persistence false\nmax_queued_messages 100000\n")
        self.broker.start()

    def publish(self, topic, payloads):
        lines = "".join(json.dumps(p) + "\n" for p in payloads)
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.broker.port),
                        "-u", "pub", "-P", "pub-pw", "-q", "1", "-t", topic, "-l"],
                       input=lines.encode(), check=True, timeout=60)

    def test_refused_subscription_is_logged_and_counted_and_the_others_deliver(self):
        self.use_acl(["sensors/#"])
        self.receiver.start()
        agent = self.agent(rules=[TEN_RULE])
        with open(agent.config_path) as f:
            config = json.load(f)
        mapping = config["mqtt"]["subscriptions"][0]["payload"]
        config["mqtt"].update(username="vigil", password="vigil-pw", subscriptions=[
            {"topic": "secret/{device}/{metric}", "qos": 1, "payload": mapping},
            {"topic": "sensors/{device}/{metric}", "qos": 1, "payload": mapping}])
        with open(agent.config_path, "w") as f:
            json.dump(config, f)
        agent.start(wait_connected=False)

        secret, sensors = 'topic="secret/+/+"', 'topic="sensors/+/+"'
        wait_for(lambda: agent.metric("vigil_mqtt_subscribed", sensors) == 1, 20,
                 "the allowed subscription")
        wait_for(lambda: (agent.metric("vigil_mqtt_subscription_failures_total", secret) or 0)
                 >= 1, 20, "the refusal to be counted")
        self.assertEqual(agent.metric("vigil_mqtt_subscribed", secret), 0)
        self.assertEqual(agent.metric("vigil_mqtt_subscription_failures_total", sensors), 0)
        self.assertEqual(agent.metric("vigil_mqtt_connected"), 1)
        log = agent.log()
        self.assertIn("error: mqtt: the broker refused the subscription to secret/+/+ "
                      "(SUBACK 0x80", log)
        self.assertIn("subscribed to 1 of 2 topic filter(s)", log)

        # The allowed subscription delivers.
        self.publish("sensors/d1/t", [reading(i, T0 + i * S) for i in range(5)] +
                     [reading(0, T0 + MINUTE)])
        events = wait_for(lambda: self.receiver.received(), 20, "the aggregate")
        self.assertEqual(events[0]["values"], {"n": 5, "sum": 10.0})

        # The broker's ACL now lets the agent read secret/#: at the reconnect after the
        # broker's restart the refused subscription is made again, and granted.
        self.use_acl(["sensors/#", "secret/#"])
        wait_for(lambda: agent.metric("vigil_mqtt_subscribed", secret) == 1, 30,
                 "the subscription granted after the reconnect")
        self.assertIn("the broker granted the subscription to secret/+/+ now", agent.log())
        self.assertEqual(agent.stop(), 0)


class Qos2Subscription(IntegrationTest):
    def qos2_agent(self, ack="after_commit"):
        self.receiver.start()
        agent = self.agent(rules=[TEN_RULE])
        with open(agent.config_path) as f:
            config = json.load(f)
        config["mqtt"]["subscriptions"][0]["qos"] = 2
        config["mqtt"]["ack"] = ack
        with open(agent.config_path, "w") as f:
            json.dump(config, f)
        return agent

    def test_qos2_with_ack_after_commit_is_subscribed_at_qos1_and_loses_nothing_in_a_crash(self):
        """With QoS 2 Paho sends PUBREC on receipt and runs the callback at PUBREL: a crash
        then loses the messages it had PUBREC'd. Subscribed at QoS 1 every message is
        acknowledged after its journal commit, and redelivered if the agent dies first."""
        agent = self.qos2_agent()
        os.environ["VIGIL_FAILPOINT"] = "crash-after-journal=3"
        try:
            agent.start()
            self.broker.publish("sensors/d1/t", [reading(i, T0 + i * S) for i in range(10)],
                                qos=2)
            wait_for(lambda: agent.proc.poll() is not None, 20, "the failpoint to kill the agent")
        finally:
            del os.environ["VIGIL_FAILPOINT"]
        self.assertEqual(len(journal_rows(self.workdir)), 3, "three messages journaled")
        agent.proc = None
        agent.start()
        wait_for(lambda: len(journal_rows(self.workdir)) == 10, 20,
                 "all ten journaled after the restart")
        self.broker.publish("sensors/d1/t", [reading(0, T0 + MINUTE)], qos=2)
        events = wait_for(lambda: self.receiver.received(), 20, "the aggregate")
        self.assertEqual(events[0]["values"], {"n": 10, "sum": 45.0}, "each reading once")
        self.assertEqual(len(journal_rows(self.workdir)), 11, "nothing journaled twice")
        self.assertIn("subscribing to sensors/+/+ at QoS 1, not 2", agent.log())
        self.assertEqual(agent.stop(), 0)

    def test_qos2_with_ack_on_receive_stays_qos2(self):
        agent = self.qos2_agent(ack="on_receive").start()
        self.broker.publish("sensors/d1/t", [reading(i, T0 + i * S) for i in range(5)] +
                            [reading(0, T0 + MINUTE)], qos=2)
        events = wait_for(lambda: self.receiver.received(), 20, "the aggregate")
        self.assertEqual(events[0]["values"], {"n": 5, "sum": 10.0})
        self.assertNotIn("at QoS 1, not 2", agent.log())
        self.assertEqual(agent.stop(), 0)


if __name__ == "__main__":
    unittest.main()
