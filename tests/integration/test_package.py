"""The Debian package (SPEC §11, packaging/README.md): built with CPack from this build,
its contents and control files inspected, lintian without errors; with VIGIL_TEST_INSTALL=1
(CI sets it; it changes the machine) installed with dpkg, the unit verified and scored with
systemd-analyze, removed and purged."""

import os
import shutil
import subprocess
import tempfile
import unittest

from harness import VIGIL

BUILD = os.path.dirname(os.path.dirname(os.path.abspath(VIGIL)))


def run(*args, check=True):
    return subprocess.run(args, capture_output=True, text=True, timeout=300, check=check)


class Package(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="vigil-deb-")
        run("cpack", "-G", "DEB", "-B", cls.tmp, "--config",
            os.path.join(BUILD, "CPackConfig.cmake"))
        debs = [f for f in os.listdir(cls.tmp) if f.endswith(".deb")]
        assert len(debs) == 1, debs
        cls.deb = os.path.join(cls.tmp, debs[0])

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def test_contents_and_control(self):
        files = run("dpkg-deb", "-c", self.deb).stdout
        for path in ("./usr/bin/vigil", "./etc/vigil/vigil.json",
                     "./etc/vigil/rules.d/temperature-high.json",
                     "./lib/systemd/system/vigil.service", "./usr/share/doc/vigil/copyright",
                     "./usr/share/doc/vigil/changelog.gz"):
            self.assertIn(path, files)
        info = run("dpkg-deb", "-I", self.deb).stdout
        self.assertIn("Package: vigil", info)
        self.assertIn("libpaho-mqttpp3", info)
        conffiles = run("dpkg-deb", "--info", self.deb, "conffiles").stdout.split()
        self.assertIn("/etc/vigil/vigil.json", conffiles)
        self.assertIn("/etc/vigil/rules.d/zscore-temperature.json", conffiles)

    @unittest.skipUnless(shutil.which("lintian"), "lintian is not installed")
    def test_lintian_finds_no_errors(self):
        out = run("lintian", "--tag-display-limit", "0", self.deb, check=False)
        errors = [line for line in out.stdout.splitlines() if line.startswith("E:")]
        self.assertEqual(errors, [], out.stdout)

    @unittest.skipUnless(os.environ.get("VIGIL_TEST_INSTALL") == "1" and os.geteuid() == 0,
                         "set VIGIL_TEST_INSTALL=1 (as root) to install the package")
    def test_install_verify_remove_purge(self):
        self.assertNotEqual(run("dpkg", "-s", "vigil", check=False).returncode, 0,
                            "vigil is installed already; not touching it")
        run("dpkg", "-i", self.deb)
        try:
            self.assertEqual(run("getent", "passwd", "vigil").returncode, 0)
            self.assertEqual(run("/usr/bin/vigil", "check", "--config",
                                 "/etc/vigil/vigil.json").stdout, "ok: 8 rules\n")
            unit = "/lib/systemd/system/vigil.service"
            verify = run("systemd-analyze", "verify", unit, check=False)
            self.assertEqual(verify.returncode, 0, verify.stderr)
            security = run("systemd-analyze", "security", "--offline=true", unit, check=False)
            score = [line for line in security.stdout.splitlines() if "exposure level" in line]
            print("\n" + (score[0] if score else security.stdout[-300:]))
        finally:
            run("dpkg", "-r", "vigil")
            self.assertTrue(os.path.exists("/etc/vigil/vigil.json"), "remove keeps the config")
            run("dpkg", "-P", "vigil")
        self.assertFalse(os.path.exists("/etc/vigil"))
        self.assertNotEqual(run("getent", "passwd", "vigil", check=False).returncode, 0)


if __name__ == "__main__":
    unittest.main()
