"""Keeps bench/getframe.py (GetImageFrame against Orthanc's raw frames) working: runs it with
--smoke (10 CT instances, 300 small frames, half-second runs), with the build under test also
passed as --before so that the three-side rounds run too, and checks what it prints, never its
timings: the imports are reported with their counts, every side was warmed with one pass over its
frames, every timed run (rounds A B C C B A: two per side and measure) answered every request
with 200 and moved bytes, the cold pass over the small frames asked for each exactly once, and
the table has its rows. This also drives `ahilite-bench http-load --mode frames --frames-file`.

Exits 77 (skipped) when Orthanc is not installed."""
# pg: no (a benchmark script's smoke run against Orthanc)
import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ahltest  # noqa: E402
import orthanc  # noqa: E402

SRC = os.environ.get('AHILITE_SRC') or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


class GetFrameBenchSmoke(unittest.TestCase):
    def test_smoke_run(self):
        r = subprocess.run([sys.executable, os.path.join(SRC, 'bench', 'getframe.py'), '--smoke',
                            '--before', ahltest.server_binary()],
                           capture_output=True, text=True, timeout=900)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        lines = r.stdout.splitlines()
        by_run = {}
        for x in (json.loads(line) for line in lines if line.startswith('{')):
            by_run.setdefault(x['run'], []).append(x)
        self.assertEqual(by_run['ahilite-import'][0]['frames'], 310)
        self.assertEqual(by_run['orthanc-import'][0]['files'], 10)
        self.assertEqual(by_run['orthanc-uncached-import'][0]['files'], 10)
        three = ['ahilite'] * 2 + ['ahilite-before'] * 2 + ['orthanc'] * 2
        expect = {
            'ct-warm': (['ahilite', 'ahilite-before', 'orthanc', 'orthanc-uncached'], 10),
            'ct-1': (three, None),
            'ct-8': (three, None),
            'ct-8-uncached': (['ahilite'] * 2 + ['orthanc-uncached'] * 2, None),
            'many-8-cold': (['ahilite', 'ahilite-before'], 300),
            'many-8': (['ahilite'] * 2 + ['ahilite-before'] * 2, None),
        }
        for name, (servers, requests) in expect.items():
            got = by_run[name]
            self.assertEqual(sorted(x['server'] for x in got), sorted(servers), name)
            for x in got:
                self.assertEqual(x['failures'], 0, x)
                self.assertGreater(x['ok'], 0, x)
                self.assertGreater(x['bytes'], 0, x)
                self.assertGreaterEqual(x['server_cpu_s'], 0, x)
                if requests:
                    self.assertEqual(x['ok'], requests, x)
        table = [line for line in lines if line.startswith('| ')]
        self.assertEqual([row.split(' | ')[0] for row in table[1:]],
                         ['| ct-1', '| ct-8', '| ct-8-uncached', '| many-8-cold', '| many-8-cold',
                          '| many-8'], r.stdout)
        self.assertIn('ahilite / Orthanc', table[0])


if __name__ == '__main__':
    if not orthanc.available():
        print('SKIP: Orthanc is not installed')
        sys.exit(77)
    unittest.main(verbosity=2)
