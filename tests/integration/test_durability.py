"""Durability (SPEC §8): acknowledgement after the journal commit, redelivery after a crash
without double counting, damaged state files moved aside, the disk quota, a long uplink
outage, `replay --journal`, and the ingest rate of both ack modes."""

import glob
import json
import os
import sqlite3
import threading
import time
import unittest
import urllib.request

from harness import T0, IntegrationTest, reading, wait_for

S = 1000
MINUTE = 60 * S

COUNT_RULE = {"id": "every", "source": {"metric": "t"}, "group_by": ["device"],
              "window": {"type": "count", "count": 1},
              "aggregates": {"v": "last(value)"}, "emit": ["aggregate"]}
TEN_RULE = {"id": "ten", "source": {"metric": "t"}, "group_by": ["device"],
            "window": {"type": "tumbling", "size": "1m"},
            "aggregates": {"n": "count()", "sum": "sum(value)"}, "emit": ["aggregate"]}


def journal_rows(workdir):
    db = sqlite3.connect(os.path.join(workdir, "state", "journal.db"))
    try:
        return db.execute("SELECT topic, payload FROM journal ORDER BY seq").fetchall()
    finally:
        db.close()


class AckAfterCommit(IntegrationTest):
    def test_message_journaled_before_a_crash_is_redelivered_and_not_counted_twice(self):
        self.receiver.start()
        agent = self.agent(rules=[TEN_RULE])
        os.environ["VIGIL_FAILPOINT"] = "crash-after-journal=5"
        try:
            agent.start()
            self.broker.publish("sensors/d1/t", [reading(i, T0 + i * S) for i in range(10)])
            wait_for(lambda: agent.proc.poll() is not None, 20, "the failpoint to kill the agent")
        finally:
            del os.environ["VIGIL_FAILPOINT"]
        self.assertEqual(len(journal_rows(self.workdir)), 5, "five messages journaled")
        agent.proc = None
        agent.start()
        # Message 5 was journaled but never acknowledged: the broker sends it again (DUP) and
        # the agent recognises it; 6..10 follow.
        wait_for(lambda: len(journal_rows(self.workdir)) == 10, 20, "all ten journaled")
        # Paho had acknowledged none, or only some, of the journaled messages when the agent
        # died; every redelivery is recognised, none is processed twice.
        wait_for(lambda: (agent.metric("vigil_duplicate_messages_total") or 0) >= 1, 10,
                 "the redelivery to be recognised")
        self.assertEqual(len(journal_rows(self.workdir)), 10, "nothing journaled twice")
        self.broker.publish("sensors/d1/t", [reading(0, T0 + MINUTE)])  # closes the window
        events = wait_for(lambda: self.receiver.received(), 20, "the aggregate")
        self.assertEqual(events[0]["values"], {"n": 10, "sum": 45.0}, "each reading once")
        self.assertEqual(agent.stop(), 0)


class DamagedState(IntegrationTest):
    def test_damaged_database_is_moved_aside_and_the_agent_runs(self):
        os.makedirs(os.path.join(self.workdir, "state"))
        with open(os.path.join(self.workdir, "state", "vigil.db"), "wb") as f:
            f.write(b"garbage " * 1000)
        agent = self.agent().start()
        kept = glob.glob(os.path.join(self.workdir, "state", "vigil.db.damaged-*"))
        self.assertEqual(len(kept), 1, os.listdir(os.path.join(self.workdir, "state")))
        with open(kept[0], "rb") as f:
            self.assertTrue(f.read().startswith(b"garbage"))
        with urllib.request.urlopen(f"http://127.0.0.1:{agent.http_port}/readyz") as r:
            body = r.read().decode()
        self.assertIn("warning: state database", body)
        self.assertIn("moved aside", body)
        self.assertIn("was damaged", agent.log())
        self.receiver.start()
        self.broker.publish("sensors/d1/temperature", [reading(50, T0), reading(50, T0 + 1000),
                                                       reading(50, T0 + MINUTE)])
        wait_for(lambda: self.receiver.received(), 20, "events from the fresh database")
        self.assertEqual(agent.stop(), 0)


class FreshJournal(IntegrationTest):
    def test_a_journal_started_afresh_is_followed_from_its_start(self):
        self.receiver.start()
        agent = self.agent(rules=[TEN_RULE]).start()
        self.broker.publish("sensors/d1/t", [reading(i, T0 + i * S) for i in range(5)])
        wait_for(lambda: len(journal_rows(self.workdir)) == 5, 20, "five journaled")
        self.assertEqual(agent.stop(), 0)
        # The journal is lost (damaged, or deleted by hand); the state remembers position 5.
        for suffix in ("", "-wal", "-shm"):
            path = os.path.join(self.workdir, "state", "journal.db" + suffix)
            if os.path.exists(path):
                os.remove(path)
        os.environ["VIGIL_FAILPOINT"] = "crash-after-journal=3"
        try:
            agent.start()
            self.broker.publish("sensors/d1/t", [reading(i, T0 + i * S) for i in range(5, 10)])
            wait_for(lambda: agent.proc.poll() is not None, 20, "the failpoint")
        finally:
            del os.environ["VIGIL_FAILPOINT"]
        agent.proc = None
        agent.start()
        self.broker.publish("sensors/d1/t", [reading(0, T0 + MINUTE)])
        events = wait_for(lambda: self.receiver.received(), 20, "the aggregate")
        # Readings journaled in the new journal before the crash were recovered, not skipped.
        self.assertEqual(events[0]["values"], {"n": 10, "sum": 45.0})
        self.assertIn("journal: starts afresh below the committed position", agent.log())
        self.assertEqual(agent.stop(), 0)


class Quota(IntegrationTest):
    def test_database_stays_under_max_bytes_dropping_aggregates_first(self):
        limit = 2 * 1024 * 1024
        alarm = {"id": "alarm", "source": {"metric": "t", "where": "value < 50"},
                 "group_by": ["device"], "window": {"type": "count", "count": 1},
                 "aggregates": {"v": "last(value)"},
                 "alert": {"when": "v >= 0", "repeat": "1s"}, "emit": ["alert"]}
        agent = self.agent(rules=[COUNT_RULE, alarm], extra={"store": {
            "max_bytes": "2MiB", "commit_interval": "50ms", "journal_retention": "1h"}})
        agent.start()
        sizes = []
        stop = threading.Event()

        def watch():
            while not stop.is_set():
                total = 0
                for f in glob.glob(os.path.join(self.workdir, "state", "*.db*")):
                    if ".damaged" not in f and not f.endswith("-shm"):
                        try:
                            total += os.path.getsize(f)
                        except OSError:
                            pass
                sizes.append(total)
                time.sleep(0.05)

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            # The receiver is down: every reading is an undelivered aggregate event.
            for batch in range(6):
                self.broker.publish("sensors/d1/t", [reading(i, T0 + (batch * 4000 + i) * S)
                                                     for i in range(4000)])
            wait_for(lambda: agent.metric("vigil_readings_total") == 24000, 60, "all readings")
            wait_for(lambda: (agent.metric("vigil_dropped_total", 'what="aggregates"') or 0) > 0,
                     20, "aggregates dropped by the quota")
        finally:
            stop.set()
            watcher.join()
        self.assertLessEqual(max(sizes), limit, f"peak {max(sizes)} bytes")
        self.assertGreater(agent.metric("vigil_dropped_total", 'what="journal"'), 0)
        # Alerts (300 of them, kept) outlive the older aggregates that were dropped. The last
        # readings' events may still be on their way to the outbox when the count is reached.
        wait_for(lambda: agent.metric("vigil_events_total", 'kind="alert"') == 300, 20,
                 "300 alerts")

        def kept_besides_aggregates():
            return (agent.metric("vigil_outbox_depth", 'uplink="receiver"') -
                    (24000 - agent.metric("vigil_dropped_total", 'what="aggregates"')))

        wait_for(lambda: kept_besides_aggregates() == 300, 20,
                 "the outbox to hold the 300 alerts and every aggregate not dropped")
        self.assertEqual(agent.metric("vigil_dropped_total", 'what="alerts"'), 0)
        journal = agent.metric("vigil_dropped_total", 'what="journal"')
        aggregates = agent.metric("vigil_dropped_total", 'what="aggregates"')
        print(f"\nquota: peak {max(sizes)} bytes of {limit}; dropped {journal:.0f} journal "
              f"messages and {aggregates:.0f} aggregate rows")
        self.assertEqual(agent.stop(), 0)


class LongOutage(IntegrationTest):
    def test_thousands_of_events_drain_in_order_when_the_uplink_returns(self):
        agent = self.agent(rules=[COUNT_RULE])
        agent.start()
        n = 5000
        self.broker.publish("sensors/d1/t", [reading(i, T0 + i * S) for i in range(n)])
        wait_for(lambda: agent.metric("vigil_outbox_depth", 'uplink="receiver"') == n, 60,
                 f"{n} events in the outbox")
        started = time.monotonic()
        self.receiver.start()
        wait_for(lambda: len(self.receiver.received()) >= n, 60, "the outbox to drain")
        took = time.monotonic() - started
        events = self.receiver.received()
        self.assertEqual([e["values"]["v"] for e in events], [float(i) for i in range(n)])
        print(f"\ndrain: {n} events in {took:.2f} s ({n / took:.0f} events/s, batches of 100)")
        self.assertEqual(agent.stop(), 0)


class JournalReplay(IntegrationTest):
    def test_replay_journal_prints_what_the_daemon_sent(self):
        self.receiver.start()
        agent = self.agent(rules=[TEN_RULE])
        agent.start()
        self.broker.publish("sensors/d1/t", [reading(i, T0 + i * 7 * S) for i in range(30)])
        wait_for(lambda: len(self.receiver.received()) >= 3, 20, "three windows")
        self.assertEqual(agent.stop(), 0)
        out = agent.run_command("replay", "--journal")
        self.assertEqual(out.returncode, 0, out.stderr)
        replayed = [json.loads(line) for line in out.stdout.splitlines()]
        sent = self.receiver.received()
        self.assertEqual(replayed[:len(sent)], sent)
        self.assertEqual(len(replayed), len(sent) + 1, "plus the window still open at the end")
        recent = agent.run_command("replay", "--journal", "--since", "1h")
        self.assertEqual(recent.stdout, out.stdout)
        none = agent.run_command("replay", "--journal", "--since", "0s")
        self.assertEqual(none.stdout, "")
        bad = agent.run_command("replay", "--journal", "--since", "yesterday")
        self.assertEqual(bad.returncode, 2)
        self.assertIn("--since: not a duration: yesterday", bad.stderr)

    def test_replay_journal_without_a_journal_is_a_clear_error(self):
        agent = self.agent(rules=[TEN_RULE])
        out = agent.run_command("replay", "--journal")
        self.assertEqual(out.returncode, 1)
        self.assertIn("replay: no journal at", out.stderr)
        self.assertEqual(out.stdout, "")


class IngestRate(IntegrationTest):
    def test_ingest_rate_by_ack_mode(self):
        """Prints the ingest rate with the journal written before each acknowledgement
        (after_commit) and by the engine thread in batches (on_receive)."""
        n = 20000
        figures = {}
        for mode in ("after_commit", "on_receive"):
            agent = self.agent(rules=[TEN_RULE])
            config = json.load(open(agent.config_path))
            config["mqtt"]["ack"] = mode
            config["agent"]["state_dir"] = "state-" + mode
            config["agent"]["log_level"] = "info"
            json.dump(config, open(agent.config_path, "w"))
            agent.start()
            started = time.monotonic()
            self.broker.publish("sensors/d1/t", [reading(i, T0 + i * 10) for i in range(n)])
            wait_for(lambda: agent.metric("vigil_readings_total") == n, 120, f"{n} readings")
            figures[mode] = n / (time.monotonic() - started)
            self.assertEqual(agent.stop(), 0)
            self.agents.remove(agent)
        print(f"\ningest: after_commit {figures['after_commit']:.0f} readings/s, "
              f"on_receive {figures['on_receive']:.0f} readings/s "
              f"({n} QoS 1 messages from mosquitto_pub)")


if __name__ == "__main__":
    unittest.main()
