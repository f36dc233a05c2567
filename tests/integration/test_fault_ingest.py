"""Faults at ingest (SPEC §8, README "Reliability"): a journal that cannot be written while
messages arrive, a broker restart that redelivers messages whose payloads repeat, and SIGTERM
while a message is held. Nothing the broker handed over is lost: every published reading ends
up journaled and counted once."""

import json
import os
import sqlite3
import subprocess
import time
import unittest

from harness import MOSQUITTO, IntegrationTest, port_open, wait_for

# Counts every reading of every device in one tumbling window of a day.
COUNT_RULE = {"id": "count", "source": {"metric": "t"}, "group_by": ["device"],
              "window": {"type": "tumbling", "size": "1d"},
              "aggregates": {"n": "count()"}, "emit": ["aggregate"]}
PAYLOAD = '{"value": 21.5}'  # no time: the same bytes every time, as many sensors send


class JournalLock:
    """Another process's write lock on the agent's journal (as a backup tool or a stuck
    sqlite3 shell would hold it)."""

    def __init__(self, path):
        self.proc = subprocess.Popen(
            ["python3", "-c",
             "import sqlite3, sys\n"
             f"db = sqlite3.connect({path!r}, isolation_level=None)\n"
             "db.execute('BEGIN EXCLUSIVE')\n"
             "print('locked', flush=True)\n"
             "sys.stdin.read()\n"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "locked"

    def release(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(10)


class IngestFaults(IntegrationTest):
    def journal_payloads(self):
        db = sqlite3.connect(os.path.join(self.workdir, "state", "journal.db"))
        try:
            return [p for (p,) in db.execute("SELECT payload FROM journal ORDER BY seq")]
        finally:
            db.close()

    def persistent_broker(self):
        """Restarts the test's broker with persistence on: a restart keeps the agent's session
        and the messages it has not acknowledged."""
        self.broker.stop()
        # mosquitto started as root writes as user mosquitto: a folder it may write to.
        folder = os.path.join(self.workdir, "mosquitto")
        os.makedirs(folder)
        os.chmod(folder, 0o777)
        os.chmod(self.workdir, 0o711)
        with open(self.broker.conf, "a") as f:
            f.write(f"persistence true\npersistence_location {folder}/\n")
        self.broker.start()

    def lock_journal(self):
        lock = JournalLock(os.path.join(self.workdir, "state", "journal.db"))
        self.addCleanup(lock.release)
        return lock

    def test_broker_restart_redelivers_repeated_payloads_and_none_is_lost(self):
        self.persistent_broker()
        agent = self.agent(rules=[COUNT_RULE], uplink_url=None).start()
        self.broker.publish("sensors/d1/t", [PAYLOAD] * 20)
        wait_for(lambda: len(self.journal_payloads()) == 20, 20, "the first 20 journaled")

        lock = self.lock_journal()
        self.broker.publish("sensors/d1/t", [PAYLOAD] * 30)
        wait_for(lambda: "cannot append" in agent.log(), 20, "the journal to refuse an append")
        # The broker goes down and comes back while messages are held and in flight: it
        # redelivers them (DUP) with payloads equal to messages journaled before.
        self.broker.proc.terminate()
        self.broker.proc.wait(10)
        wait_for(lambda: not port_open(self.broker.port), 10, "mosquitto to stop")
        self.broker.start()
        wait_for(lambda: agent.metric("vigil_mqtt_connected") == 1, 40, "the agent to reconnect")
        lock.release()
        wait_for(lambda: len(self.journal_payloads()) >= 50, 40, "all 50 journaled")
        time.sleep(1)  # nothing more arrives: each reading once
        self.assertEqual(len(self.journal_payloads()), 50, "readings lost or duplicated")
        # Held messages come again as new readings (they repeat journaled payloads, but no
        # journaled packet); journaled ones whose ack the restart cut off are skipped.
        self.assertGreaterEqual(agent.metric("vigil_redelivered_new_total"), 1,
                                "the broker redelivered held messages")
        self.assertEqual(agent.metric("vigil_readings_total"), 50)
        self.assertEqual(agent.stop(), 0)

    def test_sigterm_while_the_journal_is_locked_leaves_the_message_to_the_broker(self):
        agent = self.agent(rules=[COUNT_RULE], uplink_url=None).start()
        self.broker.publish("sensors/d1/t", [PAYLOAD] * 5)
        wait_for(lambda: len(self.journal_payloads()) == 5, 20, "five journaled")
        lock = self.lock_journal()
        self.broker.publish("sensors/d1/t", [PAYLOAD] * 3)
        wait_for(lambda: "cannot append" in agent.log(), 20, "the journal to refuse an append")
        started = time.monotonic()
        self.assertEqual(agent.stop(timeout=40), 0)
        self.assertLess(time.monotonic() - started, 30, "SIGTERM is not held up for long")
        self.assertIn("left unacknowledged", agent.log())
        self.assertIn("stopped", agent.log())
        lock.release()
        self.assertEqual(len(self.journal_payloads()), 5, "nothing journaled while locked")
        agent.start()  # the broker delivers the three again
        wait_for(lambda: len(self.journal_payloads()) == 8, 30, "all eight journaled")
        self.assertEqual(agent.metric('vigil_dropped_total', 'what="unjournaled"'), 0)
        self.assertEqual(agent.stop(), 0)


if __name__ == "__main__":
    unittest.main()
