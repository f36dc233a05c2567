"""Faults in the state folder, injected for real (store/README.md, agent/README.md):

- a full disk while the agent runs under load (a small tmpfs filled by another file);
- the database locked by another process, at start and for a few seconds while running;
- a read-only state folder at start (a tmpfs remounted read-only);
- an uplink failing for a long time within a small quota, next to a healthy one;
- `vigil outbox list` and `vigil replay --journal` against a running agent's files, a file of a
  newer schema version and a damaged file: nothing written, migrated or moved.

Mounting needs root: those tests skip themselves otherwise."""

import glob
import json
import os
import sqlite3
import subprocess
import threading
import time
import unittest
import urllib.request

from harness import T0, IntegrationTest, Receiver, reading, wait_for
from test_hostile_input import RawMqtt

S = 1000
COUNT_RULE = {"id": "every", "source": {"metric": "t"}, "group_by": ["device"],
              "window": {"type": "count", "count": 1},
              "aggregates": {"v": "last(value)"}, "emit": ["aggregate"]}
DROPS = ("journal", "dead_letters", "aggregates", "alerts", "ttl")


def snapshot(paths):
    """Each path's bytes and mtime (ns), or None when it does not exist."""
    out = {}
    for p in paths:
        try:
            st = os.stat(p)
            with open(p, "rb") as f:
                out[os.path.basename(p)] = (f.read(), st.st_mtime_ns)
        except FileNotFoundError:
            out[os.path.basename(p)] = None
    return out


def values(events):
    return {e["values"]["v"] for e in events}


class Publisher:
    """Publishes readings v = 0, 1, 2, ... of device d1 in batches until stopped or `total`."""

    def __init__(self, broker, total, batch=200, pause=0.1):
        self.broker, self.total, self.batch, self.pause = broker, total, batch, pause
        self.sent = 0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def run(self):
        while self.sent < self.total and not self.stopped.is_set():
            n = min(self.batch, self.total - self.sent)
            self.broker.publish("sensors/d1/t", [reading(self.sent + i, T0 + (self.sent + i) * S)
                                                 for i in range(n)])
            self.sent += n
            time.sleep(self.pause)

    def stop(self):
        self.stopped.set()
        self.thread.join(60)


class FaultTest(IntegrationTest):
    def setUp(self):
        super().setUp()
        self.state = os.path.join(self.workdir, "state")
        self.mounted = False

    def mount_state(self, size):
        """A tmpfs of `size` as the state folder (root only), unmounted in cleanup."""
        if os.geteuid() != 0:
            self.skipTest("needs root to mount a tmpfs")
        os.makedirs(self.state, exist_ok=True)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs",
                            self.state], capture_output=True, text=True)
        if r.returncode != 0:
            self.skipTest(f"cannot mount a tmpfs: {r.stderr.strip()}")
        self.mounted = True
        # Runs before the harness's cleanup (last added, first run): stop the agents first.
        self.addCleanup(self.unmount_state)

    def unmount_state(self):
        for agent in self.agents:
            agent.stop()
        if self.mounted:
            subprocess.run(["umount", "-l", self.state], check=False)
            self.mounted = False

    def remount(self, mode):
        subprocess.run(["mount", "-o", f"remount,{mode}", self.state], check=True)

    def state_files(self):
        return [os.path.join(self.state, name + suffix)
                for name in ("vigil.db", "journal.db") for suffix in ("", "-wal")]

    def moved_aside(self):
        return glob.glob(os.path.join(self.state, "*.damaged-*"))

    def status(self, agent):
        with urllib.request.urlopen(f"http://127.0.0.1:{agent.http_port}/api/v1/status",
                                    timeout=5) as r:
            return json.loads(r.read())

    def dropped(self, agent):
        return {what: agent.metric("vigil_dropped_total", f'what="{what}"') for what in DROPS}

    def run_once(self, n=20):
        """Runs the agent over `n` readings and stops it: a state folder with real files."""
        agent = self.agent(rules=[COUNT_RULE])
        self.receiver.start()
        agent.start()
        self.broker.publish("sensors/d1/t", [reading(i, T0 + i * S) for i in range(n)])
        wait_for(lambda: len(self.receiver.received()) >= n, 20, f"{n} events")
        self.assertEqual(agent.stop(), 0)
        return agent


class DiskFull(FaultTest):
    def test_a_full_disk_holds_readings_and_loses_nothing_once_space_is_back(self):
        self.mount_state("16m")
        self.receiver.start()
        agent = self.agent(rules=[COUNT_RULE]).start()
        total = 4000
        publisher = Publisher(self.broker, total).start()
        self.addCleanup(publisher.stop)
        wait_for(lambda: (agent.metric("vigil_readings_total") or 0) >= 800, 30,
                 "the agent under load")
        # Another file takes every free byte of the state folder.
        filler = os.path.join(self.state, "filler")
        # Unbuffered: a buffered file keeps the bytes that did not fit and raises again on close.
        with open(filler, "wb", buffering=0) as f:
            try:
                while f.write(b"\0" * 65536):
                    pass
            except OSError:
                pass
        wait_for(lambda: "cannot append, holding the message" in agent.log() or
                 "commit failed, will retry" in agent.log(), 30, "writes to fail on the full disk")
        held_at = agent.metric("vigil_readings_total")
        time.sleep(2)  # the disk stays full for a while under load
        self.assertIsNone(agent.proc.poll(), "the agent keeps running")
        with urllib.request.urlopen(f"http://127.0.0.1:{agent.http_port}/healthz", timeout=5) as r:
            self.assertEqual(r.status, 200)
        self.assertLess(agent.metric("vigil_readings_total"), total,
                        "readings are held (the broker keeps them), not taken and lost")
        os.remove(filler)
        publisher.thread.join(60)
        self.assertEqual(publisher.sent, total)
        wait_for(lambda: agent.metric("vigil_readings_total") == total, 60,
                 "every held reading journaled and processed once space is back")
        wait_for(lambda: len(values(self.receiver.received())) == total, 60,
                 "every event delivered")
        self.assertEqual(values(self.receiver.received()), set(float(i) for i in range(total)))
        self.assertEqual(self.dropped(agent), {w: 0 for w in DROPS}, "nothing dropped")
        db = sqlite3.connect(os.path.join(self.state, "journal.db"))
        try:
            journaled = db.execute("SELECT COUNT(*) FROM journal").fetchone()[0]
        finally:
            db.close()
        self.assertEqual(journaled, total, "each reading journaled once")
        self.assertEqual(self.moved_aside(), [])
        print(f"\ndisk full: held at {held_at:.0f} of {total} readings; all {total} delivered "
              "after space was freed")
        self.assertEqual(agent.stop(), 0)


class Locked(FaultTest):
    def hold_write_lock(self):
        """Another process holding vigil.db's write lock until release() (its own process: the
        locks of a connection in this one would go with any close() of the file here)."""
        holder = subprocess.Popen(
            ["python3", "-c", "import sqlite3, sys\n"
             "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
             "c.execute('BEGIN IMMEDIATE')\n"
             "print('locked', flush=True)\n"
             "sys.stdin.read()\n"
             "c.execute('ROLLBACK')\n", os.path.join(self.state, "vigil.db")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.addCleanup(holder.kill)
        self.assertEqual(holder.stdout.readline().strip(), "locked")
        return holder

    @staticmethod
    def release(holder):
        holder.stdin.close()
        holder.wait(10)
        holder.stdout.close()

    def test_locked_at_start_is_a_clear_error_and_the_files_are_kept(self):
        agent = self.run_once()
        holder = self.hold_write_lock()
        try:
            before = snapshot(self.state_files())
            agent.start(wait_connected=False)
            wait_for(lambda: agent.proc.poll() is not None, 30, "the agent to give up")
            rc, agent.proc = agent.proc.returncode, None
            self.assertNotEqual(rc, 0)
            log = agent.log()
            self.assertIn("cannot open state database", log)
            self.assertIn("database is locked by another process", log)
            self.assertIn("not starting, the file is left as it is", log)
            self.assertEqual(snapshot(self.state_files()), before, "no file written")
            self.assertEqual(self.moved_aside(), [])
        finally:
            self.release(holder)
        # Once the lock is gone the agent starts with its state: its outbox and positions.
        agent.start()
        self.broker.publish("sensors/d1/t", [reading(20, T0 + 20 * S)])
        wait_for(lambda: len(self.receiver.received()) >= 21, 20, "the next event")
        self.assertEqual(values(self.receiver.received()), set(float(i) for i in range(21)))
        self.assertEqual(agent.stop(), 0)

    def test_locked_for_seconds_while_running_commits_wait_and_nothing_is_lost(self):
        self.receiver.start()
        agent = self.agent(rules=[COUNT_RULE]).start()
        total = 3000
        publisher = Publisher(self.broker, total).start()
        self.addCleanup(publisher.stop)
        wait_for(lambda: (agent.metric("vigil_readings_total") or 0) >= 500, 30, "load")
        holder = self.hold_write_lock()
        try:
            # Held past the 5 s busy timeout: at least one commit fails and is retried.
            # Each writer waits out the 5 s busy timeout in turn (retention, the dispatcher's
            # deletes, the commit): under a sanitizer and a loaded machine that takes a while.
            wait_for(lambda: "commit failed, will retry" in agent.log(), 90,
                     "a commit to give up on the lock")
            self.assertIn("database is locked", agent.log())
            self.assertIsNone(agent.proc.poll())
        finally:
            self.release(holder)
        publisher.thread.join(60)
        wait_for(lambda: len(values(self.receiver.received())) == total, 60,
                 "every event once the lock is gone")
        self.assertEqual(values(self.receiver.received()), set(float(i) for i in range(total)))
        self.assertEqual(self.dropped(agent), {w: 0 for w in DROPS})
        self.assertEqual(self.moved_aside(), [])
        self.assertEqual(agent.stop(), 0)


class ReadOnlyFolder(FaultTest):
    def test_a_read_only_state_folder_is_a_clear_error_and_the_files_are_kept(self):
        self.mount_state("16m")
        agent = self.run_once()
        before = snapshot(self.state_files())
        self.remount("ro")
        agent.start(wait_connected=False)
        wait_for(lambda: agent.proc.poll() is not None, 30, "the agent to give up")
        rc, agent.proc = agent.proc.returncode, None
        self.assertNotEqual(rc, 0)
        log = agent.log()
        self.assertIn("cannot open state database", log)
        self.assertIn("read-only", log)
        self.assertEqual(snapshot(self.state_files()), before)
        # The outbox can still be listed (read-only, nothing written).
        out = agent.run_command("outbox", "list")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(snapshot(self.state_files()), before)
        self.remount("rw")
        agent.start()
        self.assertEqual(agent.stop(), 0)


class FailingUplink(FaultTest):
    """An uplink that rejects (400: dead letters), then fails (503) for long, within a 1 MiB
    quota, next to a healthy uplink routed the same events."""

    def test_dead_letters_go_first_and_the_healthy_uplink_keeps_receiving(self):
        failing = Receiver().start()
        self.addCleanup(failing.stop)
        failing.status = 400
        self.receiver.start()  # the healthy one

        def uplink(name, url):
            return {"name": name, "type": "http", "url": url,
                    "batch": {"max_events": 100, "max_delay": "100ms"},
                    "retry": {"initial": "100ms", "max": "300ms"}, "timeout": "2s"}

        agent = self.agent(rules=[COUNT_RULE], extra={
            "uplinks": [uplink("failing", failing.url), uplink("healthy", self.receiver.url)],
            "store": {"max_bytes": "1MiB", "commit_interval": "50ms"}})
        agent.start()
        samples = []
        sampling = threading.Event()

        def sample():  # the dropped counters and the dead letters, read in one answer
            while not sampling.is_set():
                try:
                    s = self.status(agent)
                    dead = {u["name"]: u["dead"] for u in s["uplinks"]}
                    samples.append((s["store"]["dropped"], dead["failing"]))
                except OSError:
                    pass
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        self.addCleanup(sampling.set)
        publisher = Publisher(self.broker, 60000, batch=250, pause=0.3).start()
        self.addCleanup(publisher.stop)
        # Dead letters fill most of the quota (about 2 400 rows of 300 bytes in 1 MiB)...
        wait_for(lambda: (agent.metric("vigil_deliveries_total",
                                       'uplink="failing",outcome="dead"') or 0) >= 2400, 40,
                 "dead letters")
        failing.status = 503
        # ... then the failing uplink's backlog grows past the quota.
        wait_for(lambda: (agent.metric("vigil_dropped_total", 'what="aggregates"') or 0) >= 1000,
                 40, "undelivered aggregates dropped by the quota")
        publisher.stop()
        sent = publisher.sent
        wait_for(lambda: agent.metric("vigil_events_total", 'kind="aggregate"') == sent, 30,
                 "every reading's event committed")
        wait_for(lambda: agent.metric("vigil_outbox_depth", 'uplink="healthy"') == 0, 30,
                 "the healthy uplink to catch up")
        sampling.set()
        sampler.join(10)

        healthy = values(self.receiver.received())
        self.assertEqual(healthy, set(float(i) for i in range(sent)),
                         "the healthy uplink received every event")
        dead_made = agent.metric("vigil_deliveries_total", 'uplink="failing",outcome="dead"')
        d = self.dropped(agent)
        self.assertEqual(d["dead_letters"], dead_made, "every dead letter went, counted")
        self.assertGreater(d["aggregates"], 0)
        self.assertEqual(d["alerts"], 0)
        # Dead letters first: whenever undelivered events had been dropped, none was left.
        after = [dead for dropped, dead in samples if dropped["aggregates"] > 0]
        self.assertTrue(after, "sampled while aggregates were dropped")
        self.assertEqual(set(after), {0}, "no dead letter outlived the first dropped event")
        log = agent.log()
        self.assertIn('dead letter(s), the oldest', log)
        self.assertIn('vigil_dropped_total{what="dead_letters"}', log)
        self.assertIn('undelivered aggregate row(s), the oldest', log)
        self.assertLess(log.index('vigil_dropped_total{what="dead_letters"}'),
                        log.index('vigil_dropped_total{what="aggregates"}'))

        # The failing uplink recovers: it gets everything neither dead-lettered nor dropped.
        failing.status = 200
        wait_for(lambda: agent.metric("vigil_outbox_depth", 'uplink="failing"') == 0, 40,
                 "the failing uplink's backlog to drain")
        got = values(failing.received())
        self.assertEqual(len(got) + d["dead_letters"] + d["aggregates"], sent,
                         "received + dead letters + dropped = every event")
        self.assertTrue(got <= healthy)
        newest = set(float(i) for i in range(sent - len(got), sent))
        self.assertEqual(got, newest, "what was kept is the newest, in one piece")
        print(f"\nfailing uplink: {sent} events; {dead_made:.0f} dead letters and "
              f"{d['aggregates']:.0f} aggregates dropped (counted); the healthy uplink got all, "
              f"the failing one the newest {len(got)}")
        self.assertEqual(agent.stop(), 0)


class StateOverQuota(FaultTest):
    """Rule state alone fills most of a 1 MiB quota: thousands of keys with open windows."""

    KEYS_RULE = {"id": "keys", "source": {"metric": "k"}, "group_by": ["device"],
                 "window": {"type": "tumbling", "size": "1h"},
                 "aggregates": {"n": "count()", "s": "sum(value)", "hi": "max(value)",
                                "lo": "min(value)"}, "emit": ["aggregate"]}

    def test_it_is_reported_loudly_and_the_newest_events_still_flow(self):
        self.receiver.start()
        agent = self.agent(rules=[COUNT_RULE, self.KEYS_RULE], extra={
            "store": {"max_bytes": "1MiB", "commit_interval": "50ms",
                      "checkpoint_interval": "1s"}})
        agent.start()
        mqtt = RawMqtt(self.broker.port, "state-filler")
        keys = 6000
        for i in range(keys):
            mqtt.publish(f"sensors/dev-{i}/k", json.dumps({"value": i, "ts": T0 + i}))
        mqtt.close()
        # Checkpointed, the state alone passes the quota's 75% mark.
        wait_for(lambda: (agent.metric("vigil_store_bytes") or 0) > 0.75 * 1024 * 1024 and
                 agent.metric("vigil_readings_total") == keys, 40, "the state to fill the quota")
        # Events still flow to the uplink that keeps up: the outbox keeps its newest eighth
        # of the quota rather than being emptied at every commit.
        total = 2000
        Publisher(self.broker, total, batch=100, pause=0.1).run()
        wait_for(lambda: agent.metric("vigil_events_total", 'kind="aggregate"') == total, 30,
                 "every reading's event committed")
        wait_for(lambda: agent.metric("vigil_outbox_depth", 'uplink="receiver"') == 0, 30,
                 "the outbox to drain")
        got = values(self.receiver.received())
        d = self.dropped(agent)
        self.assertEqual(len(got) + d["aggregates"], total, "every event delivered or counted")
        self.assertGreaterEqual(len(got), total * 0.95, f"delivered {len(got)} of {total}")
        # And it is said loudly: a metric, `vigil status`, /api/v1/status, the log.
        wait_for(lambda: agent.metric("vigil_quota_exceeded_by_state") == 1, 20,
                 "the state over the quota to be reported")
        self.assertGreater(agent.metric("vigil_state_bytes"), 300_000)
        self.assertIn("store: the rule state takes more of store.max_bytes", agent.log())
        self.assertIn("Raise store.max_bytes", agent.log())
        status = agent.run_command("status")
        self.assertEqual(status.returncode, 0, status.stderr)
        self.assertIn("QUOTA EXCEEDED BY RULE STATE", status.stdout)
        self.assertTrue(self.status(agent)["store"]["quota_exceeded_by_state"])
        print(f"\nstate over quota: {agent.metric('vigil_state_bytes'):.0f} bytes of rule state, "
              f"{agent.metric('vigil_store_bytes'):.0f} bytes of files for a 1 MiB quota; "
              f"{len(got)} of {total} events delivered, {d['aggregates']:.0f} dropped")
        self.assertEqual(agent.stop(), 0)


class ReadOnlyCommands(FaultTest):
    """`vigil outbox list` and `vigil replay --journal` never write, migrate or move files."""

    def idle_agent(self):
        # No uplink: events stay in the outbox (pseudo-uplink "log") and nothing retries, so an
        # idle agent leaves its files alone; no checkpoint during the test.
        agent = self.agent(rules=[COUNT_RULE], uplink_url=None,
                           extra={"store": {"commit_interval": "50ms",
                                            "checkpoint_interval": "1h"}})
        agent.start()
        self.broker.publish("sensors/d1/t", [reading(i, T0 + i * S) for i in range(50)])
        wait_for(lambda: agent.metric("vigil_events_total", 'kind="aggregate"') == 50, 20,
                 "50 events committed")
        return agent

    def stable_files(self):
        """The state files once two looks a second apart agree."""
        def same():
            a = snapshot(self.state_files())
            time.sleep(1)
            return a if a == snapshot(self.state_files()) else None
        return wait_for(same, 20, "the idle agent's files to settle")

    def test_against_a_running_agent_nothing_is_written(self):
        agent = self.idle_agent()
        before = self.stable_files()
        self.assertIsNotNone(before["vigil.db-wal"], "a running agent's WAL")
        listed = agent.run_command("outbox", "list")
        self.assertEqual(listed.returncode, 0, listed.stderr)
        self.assertIn("log: 50 pending, 0 dead", listed.stdout)
        dead = agent.run_command("outbox", "list", "--dead")
        self.assertEqual(dead.returncode, 0, dead.stderr)
        replay = agent.run_command("replay", "--journal")
        self.assertEqual(replay.returncode, 0, replay.stderr)
        self.assertEqual(len(replay.stdout.splitlines()), 50)
        self.assertEqual(snapshot(self.state_files()), before,
                         "database files and WAL files unchanged, bytes and mtime")
        # The agent goes on as before.
        self.broker.publish("sensors/d1/t", [reading(50, T0 + 50 * S)])
        wait_for(lambda: self.status(agent)["readings_total"] == 51, 20, "the next reading")
        self.assertEqual(agent.stop(), 0)

    def test_a_newer_schema_is_an_error_and_left_alone(self):
        agent = self.idle_agent()
        self.assertEqual(agent.stop(), 0)
        for name in ("vigil.db", "journal.db"):
            db = sqlite3.connect(os.path.join(self.state, name))
            db.execute("UPDATE meta SET value = '99' WHERE name = 'schema_version'")
            db.commit()
            db.close()
        files = [os.path.join(self.state, n) for n in ("vigil.db", "journal.db")]
        before = snapshot(files)
        for args in (("outbox", "list"), ("outbox", "retry"), ("outbox", "purge"),
                     ("replay", "--journal")):
            out = agent.run_command(*args)
            self.assertNotEqual(out.returncode, 0, args)
            self.assertIn("schema version 99 is newer than this vigil's", out.stderr, args)
            self.assertIn("upgrade vigil or move the file away", out.stderr, args)
        agent.start(wait_connected=False)
        wait_for(lambda: agent.proc.poll() is not None, 20, "vigil run to refuse")
        rc, agent.proc = agent.proc.returncode, None
        self.assertNotEqual(rc, 0)
        self.assertIn("schema version 99 is newer", agent.log())
        self.assertEqual(snapshot(files), before, "the database files are untouched")
        for name in ("vigil.db-wal", "journal.db-wal"):  # at most the empty WAL a reader makes
            path = os.path.join(self.state, name)
            self.assertTrue(not os.path.exists(path) or os.path.getsize(path) == 0, name)
        self.assertEqual(self.moved_aside(), [])

    def test_a_damaged_file_is_not_moved_by_the_commands(self):
        os.makedirs(self.state)
        for name in ("vigil.db", "journal.db"):
            with open(os.path.join(self.state, name), "wb") as f:
                f.write(b"garbage " * 1000)
        agent = self.agent(rules=[COUNT_RULE])
        for args in (("outbox", "list"), ("outbox", "retry"), ("replay", "--journal")):
            out = agent.run_command(*args)
            self.assertNotEqual(out.returncode, 0, args)
            self.assertIn("damaged", out.stderr, args)
            self.assertIn("left as it is", out.stderr, args)
        self.assertEqual(self.moved_aside(), [])
        for name in ("vigil.db", "journal.db"):
            with open(os.path.join(self.state, name), "rb") as f:
                self.assertTrue(f.read().startswith(b"garbage"))


if __name__ == "__main__":
    unittest.main()
