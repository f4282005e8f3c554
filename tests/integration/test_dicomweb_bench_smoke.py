"""Keeps bench/dicomweb.py (ahilite's DICOMweb against Orthanc's) working: runs it with --smoke
(a 5- and a 20-instance series, half-second runs) and checks what it prints, never its timings:
both imports are reported, every load run (A B B A: two per server and measure) answered every
request with 200 and moved bytes, every store run (when the build serves STOW-RS) stored all its
instances, the first answers of both servers agreed (the bench stops
otherwise), and the ratio table has its rows. This also drives `ahilite-bench http-load
--mode get`, signed against ahilite and --unsigned against Orthanc.

Exits 77 (skipped) when Orthanc or its DICOMweb plugin is not installed."""
import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import orthanc  # noqa: E402

SRC = os.environ.get('AHILITE_SRC') or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


class BenchSmoke(unittest.TestCase):
    def test_smoke_run(self):
        r = subprocess.run([sys.executable, os.path.join(SRC, 'bench', 'dicomweb.py'), '--smoke'],
                           capture_output=True, text=True, timeout=600)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        lines = r.stdout.splitlines()
        runs = [json.loads(line) for line in lines if line.startswith('{')]
        by_run = {}
        for x in runs:
            by_run.setdefault(x['run'], []).append(x)
        self.assertEqual(by_run['ahilite-import'][0]['instances'], 25)
        self.assertEqual(by_run['orthanc-rest-import'][0]['instances'], 25)
        for name in ('metadata-5', 'metadata-20', 'frames'):
            got = by_run[name]
            self.assertEqual(sorted(x['server'] for x in got), ['ahilite'] * 2 + ['orthanc'] * 2)
            for x in got:
                self.assertEqual(x['failures'], 0, x)
                self.assertGreater(x['ok'], 0, x)
                self.assertGreater(x['bytes'], 0, x)
                self.assertGreaterEqual(x['server_cpu_s'], 0, x)
        table = [line for line in lines if line.startswith('| ')]
        self.assertIn('frames/s, 8 connections', table[5])
        if by_run.get('store', [{}])[0].get('skipped'):
            self.assertEqual(len(table), 6, r.stdout)  # header and five measures
            return
        for name in ('store-1', 'store-3'):  # the smoke run stores 6 instances, 3 a request
            got = by_run[name]
            self.assertEqual(sorted(x['server'] for x in got), ['ahilite'] * 2 + ['orthanc'] * 2)
            self.assertTrue(all(x['instances'] == 6 for x in got), got)
        self.assertEqual(len(table), 8, r.stdout)


if __name__ == '__main__':
    if not orthanc.available():
        print('SKIP: Orthanc or its DICOMweb plugin is not installed')
        sys.exit(77)
    unittest.main(verbosity=2)
