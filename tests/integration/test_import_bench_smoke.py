"""Keeps bench/import_orthanc.py (ahilite's import with frames against Orthanc's REST import)
working: runs it with --smoke (20 unique-pixel instances, one round) and checks what it prints,
never its timings: an import job run, an `ahilite import` run and an Orthanc run, each of all 20
instances with its wall time, CPU time and rates (the bench itself stops unless the job reported
every instance in success.ndjson and Orthanc counts every one), a summary per ahilite side with
its ratios, and the table. Also checks that the files it imports have pairwise different frames
(what makes them "unique-pixel").

Exits 77 (skipped) when Orthanc or its DICOMweb plugin is not installed."""
# pg: no (a benchmark script's smoke run against Orthanc)
import json
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ahltest  # noqa: E402
import orthanc  # noqa: E402

SRC = os.environ.get('AHILITE_SRC') or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
KEYS = {'side', 'instances', 'wall_s', 'cpu_s', 'per_s', 'per_cpu_s', 'how'}
SUMMARY_KEYS = {'run', 'instances', 'side', 'per_s', 'orthanc_per_s', 'ratio', 'per_cpu_s',
                'orthanc_per_cpu_s', 'ratio_per_cpu_s'}


class BenchSmoke(unittest.TestCase):
    def test_smoke_run(self):
        r = subprocess.run([sys.executable, os.path.join(SRC, 'bench', 'import_orthanc.py'),
                            '--smoke'], capture_output=True, text=True, timeout=600)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        lines = r.stdout.splitlines()
        rows = [json.loads(line) for line in lines if line.startswith('{')]
        runs = {x['side']: x for x in rows if 'run' not in x}
        self.assertEqual(sorted(runs), ['ahilite', 'ahilite-cli', 'orthanc'], r.stdout)
        for side, x in runs.items():
            self.assertTrue(KEYS <= set(x), x)
            self.assertEqual(x['instances'], 20, x)
            self.assertGreater(x['wall_s'], 0, x)
            self.assertGreaterEqual(x['cpu_s'], 0, x)
        self.assertIn('client_cpu_s', runs['orthanc'])
        summaries = [x for x in rows if x.get('run') == 'summary']
        self.assertEqual(sorted(x['side'] for x in summaries), ['ahilite', 'ahilite-cli'])
        for x in summaries:
            self.assertEqual(set(x), SUMMARY_KEYS, x)
        table = [line for line in lines if line.startswith('| ')]
        self.assertEqual(len(table), 3, r.stdout)  # the header and one row per ahilite side

    def test_unique_pixels(self):
        with tempfile.TemporaryDirectory() as d:
            ahltest.write_series(12, d, '1.2.826.0.1.3680043.8.498.9293.', unique_pixels=True)
            check = subprocess.run(['/usr/bin/python3', '-c', '''
import hashlib, os, sys, pydicom
d = sys.argv[1]
print(len({hashlib.sha256(pydicom.dcmread(os.path.join(d, f)).PixelData).hexdigest()
           for f in os.listdir(d)}))
''', d], capture_output=True, text=True, check=True)
            self.assertEqual(check.stdout.strip(), '12')


if __name__ == '__main__':
    if not orthanc.available():
        print('SKIP: Orthanc or its DICOMweb plugin is not installed')
        sys.exit(77)
    unittest.main(verbosity=2)
