"""Keeps bench/tiers.py (what recording reads as accesses costs, against a build from before)
working: runs it with --smoke (20 instances, half-second runs), with the build under test also
passed as --before, and checks what it prints, never its timings: in each phase (the access held
in memory, then written) and each mode (GetImageFrame, GetImageSetMetadata) two runs a side that
answered every request, and the table's four rows."""
# pg: no (a benchmark script's smoke run)
import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ahltest  # noqa: E402

SRC = os.environ.get('AHILITE_SRC') or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


class TiersBenchSmoke(unittest.TestCase):
    def test_smoke_run(self):
        r = subprocess.run([sys.executable, os.path.join(SRC, 'bench', 'tiers.py'), '--smoke',
                            '--before', ahltest.real_binary()],
                           capture_output=True, text=True, timeout=600)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        runs = [json.loads(line) for line in r.stdout.splitlines() if line.startswith('{')]
        for phase in ('table', 'stored'):
            for mode in ('frames', 'metadata'):
                got = [x for x in runs if x['phase'] == phase and x['mode'] == mode]
                self.assertEqual(sorted(x['server'] for x in got),
                                 ['after', 'after', 'before', 'before'], (phase, mode))
                for x in got:
                    self.assertGreater(x['ok'], 0, x)
                    self.assertEqual(x['failures'], 0, x)
        rows = [line.split() for line in r.stdout.splitlines()
                if line.startswith(('table ', 'stored '))]
        self.assertEqual([row[:2] for row in rows], [['table', 'frames'], ['table', 'metadata'],
                                                    ['stored', 'frames'],
                                                    ['stored', 'metadata']])


if __name__ == '__main__':
    unittest.main(verbosity=2)
