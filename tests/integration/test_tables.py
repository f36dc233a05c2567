"""Enrichment (stream–table join): a reference table of per-device metadata read by a rule as
`devices.max_temp`, loaded at start, reloaded when its file changes (and on SIGHUP) without a
restart and without losing rule state; an invalid rewrite is logged and the previous table
stays in force; a bad table at start is fatal (exit 78) and `vigil check` lists it."""

import os
import shutil
import signal
import subprocess
import unittest

from harness import T0, IntegrationTest, reading, wait_for

HOT = {
    "id": "hot",
    "source": {"metric": "temperature"},
    "group_by": ["device"],
    "window": {"type": "count", "count": 1},
    "aggregates": {"v": "last(value)"},
    "alert": {"when": "v > devices.max_temp", "summary": "{device} at {v} above {devices.max_temp}"},
}
TABLES = {"devices": {"file": "devices.csv", "key": "device"}}


class Tables(IntegrationTest):
    def write_table(self, text):
        with open(os.path.join(self.workdir, "devices.csv"), "w") as f:
            f.write(text)

    def firing(self):
        return [e for e in self.receiver.received() if e.get("state") == "firing"]

    def reloads(self, agent, outcome):
        return agent.metric("vigil_table_reloads_total", f'table="devices",outcome="{outcome}"')

    def test_a_per_device_threshold_column_and_reload_on_change(self):
        self.receiver.start()
        self.write_table("device,max_temp,site\ndev-1,40,north\ndev-2,50,south\n")
        agent = self.agent(rules=[HOT], extra={"tables": TABLES}).start()
        self.assertEqual(agent.metric("vigil_table_rows", 'table="devices"'), 2)
        self.assertEqual(self.reloads(agent, "ok"), 0)

        # dev-2 is below its own threshold, dev-3 has no row: neither fires. dev-1 comes last,
        # so once its alert is delivered the other two were evaluated (one uplink, in order).
        self.broker.publish("sensors/dev-2/temperature", [reading(45, T0 + 1000)])
        self.broker.publish("sensors/dev-3/temperature", [reading(99, T0 + 1000)])
        self.broker.publish("sensors/dev-1/temperature", [reading(45, T0 + 1000)])
        wait_for(self.firing, 20, "dev-1's alert")
        self.assertEqual([(e["key"], e["summary"]) for e in self.firing()],
                         [({"device": "dev-1"}, "dev-1 at 45 above 40")])

        # A new threshold for dev-2 and a row for dev-4 apply without a restart.
        self.write_table("device,max_temp,site\ndev-1,40,north\ndev-2,30,south\ndev-4,10,east\n")
        wait_for(lambda: (self.reloads(agent, "ok") or 0) >= 1, 20, "the table reload")
        self.assertIn("reload: table devices: 3 row(s) from", agent.log())
        self.assertEqual(agent.metric("vigil_table_rows", 'table="devices"'), 3)
        self.broker.publish("sensors/dev-2/temperature", [reading(35, T0 + 2000)])
        # dev-1's alert state was kept: still firing, it does not fire again.
        self.broker.publish("sensors/dev-1/temperature", [reading(46, T0 + 2000)])
        wait_for(lambda: len(self.firing()) >= 2, 20, "dev-2's alert")
        self.assertEqual([(e["key"], e["summary"]) for e in self.firing()][1:],
                         [({"device": "dev-2"}, "dev-2 at 35 above 30")])
        wait_for(lambda: agent.metric("vigil_rule_evaluations_total", 'rule="hot"') == 5, 20,
                 "five evaluations")
        self.assertNotIn("rule(s) in force", agent.log(), "a table reload does not swap engines")

        # An invalid rewrite: logged with its line, the previous table stays (dev-4 still has
        # its row and fires).
        self.write_table("device,max_temp\ndev-1,40\ndev-1,41\n")
        wait_for(lambda: (self.reloads(agent, "error") or 0) >= 1, 20, "the refused reload")
        log = agent.log()
        self.assertIn('devices.csv:3: duplicate key "dev-1" (first on line 2)', log)
        self.assertIn("reload: table devices is invalid; the previous one stays in force", log)
        self.assertEqual(agent.metric("vigil_table_rows", 'table="devices"'), 3)
        self.broker.publish("sensors/dev-4/temperature", [reading(20, T0 + 3000)])
        wait_for(lambda: len(self.firing()) >= 3, 20, "dev-4's alert")
        self.assertEqual(self.firing()[2]["summary"], "dev-4 at 20 above 10")
        self.assertEqual(self.reloads(agent, "ok"), 1)
        status = agent.run_command("status")
        self.assertEqual(status.returncode, 0, status.stderr)
        self.assertIn("tables\n  devices: 3 rows, 1 reloads, 1 refused (the previous version kept)\n",
                      status.stdout)
        self.assertEqual(agent.stop(), 0)

    def test_sighup_reloads_the_tables(self):
        self.receiver.start()
        self.write_table("device,max_temp\ndev-1,40\n")
        agent = self.agent(rules=[HOT], extra={"tables": TABLES}).start()
        agent.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: self.reloads(agent, "ok") == 1, 20, "the reload on SIGHUP")
        self.assertEqual(agent.metric("vigil_table_rows", 'table="devices"'), 1)
        if shutil.which("promtool"):
            check = subprocess.run(["promtool", "check", "metrics"], input=agent.metrics(),
                                   capture_output=True, text=True, timeout=30)
            self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        self.assertEqual(agent.stop(), 0)

    def test_a_bad_table_at_start_is_fatal_and_check_lists_it(self):
        agent = self.agent(rules=[HOT], extra={"tables": TABLES})
        result = agent.run_command("check")
        self.assertEqual(result.returncode, 1)
        self.assertIn("devices.csv: no such table file", result.stderr)

        self.write_table("device,max_temp\ndev-1,40,extra\n")
        result = agent.run_command("check")
        self.assertEqual(result.returncode, 1)
        self.assertIn("devices.csv:2: 3 cells; the header has 2 columns", result.stderr)
        agent.start(wait_connected=False)
        self.assertEqual(agent.proc.wait(20), 78)
        self.assertIn("devices.csv:2: 3 cells; the header has 2 columns", agent.log())

        self.write_table("device,max_temp\ndev-1,40\n")
        result = agent.run_command("check")
        self.assertEqual((result.returncode, result.stdout, result.stderr), (0, "ok: 1 rules\n", ""))


if __name__ == "__main__":
    unittest.main()
