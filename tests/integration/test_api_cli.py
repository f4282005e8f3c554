"""Drives `ahilite serve` with the AWS CLI (`aws medical-imaging ...`), as a user would: the
credentials file the server trusts, --endpoint-url, and AWS_DISABLE_HOST_PREFIX_INJECTION=true for
the data-plane commands. Checks outputs and the errors the CLI prints."""
# pg: no (the AWS CLI starting once per call is its cost, 120 s; test_api_boto3.py covers the same operations on PostgreSQL)
import json
import os
import shutil
import subprocess
import sys
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ahltest  # noqa: E402

SRV = None
ZERO_ID = '0' * 32


def setUpModule():
    global SRV
    ahltest._ensure_model()
    SRV = ahltest.Server()


def tearDownModule():
    SRV.finish()


def aws_binary():
    """The AWS CLI next to the Python running the tests (pyenv), else the one on PATH."""
    here = os.path.join(os.path.dirname(sys.executable), 'aws')
    return here if os.path.exists(here) else shutil.which('aws')


def aws(*args, profile='default', ok=True):
    env = os.environ.copy()
    env.update({
        'AWS_SHARED_CREDENTIALS_FILE': SRV.cred_file,
        'AWS_CONFIG_FILE': os.devnull,
        'AWS_PROFILE': profile,
        'AWS_DEFAULT_REGION': ahltest.REGION,
        'AWS_DISABLE_HOST_PREFIX_INJECTION': 'true',
        'AWS_MAX_ATTEMPTS': '1',
        'AWS_RETRY_MODE': 'standard',
    })
    for k in ('AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN'):
        env.pop(k, None)
    p = subprocess.run([aws_binary(), 'medical-imaging', *args, '--endpoint-url', SRV.endpoint,
                        '--output', 'json'], env=env, capture_output=True, text=True,
                       timeout=120)
    if ok:
        if p.returncode != 0:
            raise AssertionError('aws %s failed (%d):\n%s' % (' '.join(args), p.returncode,
                                                              p.stderr))
        return json.loads(p.stdout) if p.stdout.strip() else {}
    return p


class Cli(unittest.TestCase):
    def assertCliError(self, p, code):
        self.assertNotEqual(p.returncode, 0)
        self.assertIn('(%s)' % code, p.stderr)

    def test_datastore_and_tags(self):
        r = aws('create-datastore', '--datastore-name', 'cli-store', '--tags', 'a=1,b=2')
        ds = r['datastoreId']
        self.assertEqual(r['datastoreStatus'], 'CREATING')
        p = aws('get-datastore', '--datastore-id', ds)['datastoreProperties']
        self.assertEqual((p['datastoreName'], p['datastoreStatus']), ('cli-store', 'ACTIVE'))
        arn = p['datastoreArn']
        self.assertIsInstance(p['createdAt'], (int, float, str))
        listed = aws('list-datastores', '--datastore-status', 'ACTIVE')['datastoreSummaries']
        self.assertIn(ds, [s['datastoreId'] for s in listed])

        self.assertEqual(aws('list-tags-for-resource', '--resource-arn', arn)['tags'],
                         {'a': '1', 'b': '2'})
        aws('tag-resource', '--resource-arn', arn, '--tags', 'c=3')
        aws('untag-resource', '--resource-arn', arn, '--tag-keys', 'a', 'b')
        self.assertEqual(aws('list-tags-for-resource', '--resource-arn', arn)['tags'], {'c': '3'})

        self.assertCliError(aws('get-datastore', '--datastore-id', 'Bad-Id', ok=False),
                            'ValidationException')
        self.assertCliError(aws('get-datastore', '--datastore-id', ZERO_ID, ok=False),
                            'ResourceNotFoundException')
        self.assertCliError(aws('tag-resource', '--resource-arn', arn, '--tags', 'aws:x=1',
                                ok=False), 'ValidationException')
        self.assertEqual(aws('list-tags-for-resource', '--resource-arn', arn)['tags'], {'c': '3'})

        r = aws('delete-datastore', '--datastore-id', ds)
        self.assertEqual(r['datastoreStatus'], 'DELETING')
        self.assertEqual(aws('get-datastore', '--datastore-id', ds)['datastoreProperties'][
            'datastoreStatus'], 'DELETED')

    def test_paging_with_max_items(self):
        made = [aws('create-datastore', '--datastore-name', 'cli-page-%d' % i)['datastoreId']
                for i in range(3)]
        first = aws('list-datastores', '--max-items', '2')
        self.assertEqual(len(first['datastoreSummaries']), 2)
        self.assertIn('NextToken', first)
        rest = aws('list-datastores', '--starting-token', first['NextToken'])
        ids = [s['datastoreId'] for s in first['datastoreSummaries'] + rest['datastoreSummaries']]
        for ds in made:
            self.assertIn(ds, ids)
        # Every page of the CLI's own paginator, one item per request.
        allp = aws('list-datastores', '--page-size', '1')
        self.assertEqual(sorted(s['datastoreId'] for s in allp['datastoreSummaries']),
                         sorted(ids))
        for ds in made:
            aws('delete-datastore', '--datastore-id', ds)

    def test_data_plane_commands(self):
        ds = aws('create-datastore', '--datastore-name', 'cli-runtime')['datastoreId']
        r = aws('search-image-sets', '--datastore-id', ds)
        self.assertEqual(r['imageSetsMetadataSummaries'], [])
        r = aws('search-image-sets', '--datastore-id', ds, '--search-criteria',
                json.dumps({'filters': [{'values': [{'DICOMPatientId': 'x'}],
                                         'operator': 'EQUAL'}]}))
        self.assertEqual(r['imageSetsMetadataSummaries'], [])
        self.assertCliError(aws('get-image-set', '--datastore-id', ds, '--image-set-id',
                                ZERO_ID, ok=False), 'ResourceNotFoundException')
        self.assertCliError(aws('list-image-set-versions', '--datastore-id', ds,
                                '--image-set-id', ZERO_ID, ok=False), 'ResourceNotFoundException')
        out = os.path.join(SRV.tmp, 'meta.json.gz')
        self.assertCliError(aws('get-image-set-metadata', '--datastore-id', ds, '--image-set-id',
                                ZERO_ID, out, ok=False), 'ResourceNotFoundException')
        self.assertCliError(aws('get-image-set', '--datastore-id', ds, '--image-set-id',
                                ZERO_ID, '--version-id', 'one', ok=False), 'ValidationException')
        self.assertCliError(aws('delete-datastore', '--datastore-id', ZERO_ID, ok=False),
                            'ResourceNotFoundException')
        aws('delete-datastore', '--datastore-id', ds)

    def test_import_job_api(self):
        ds = aws('create-datastore', '--datastore-name', 'cli-jobs')['datastoreId']
        self.assertEqual(aws('list-dicom-import-jobs', '--datastore-id', ds)['jobSummaries'], [])
        self.assertCliError(aws('get-dicom-import-job', '--datastore-id', ds, '--job-id', 'abc',
                                ok=False), 'ResourceNotFoundException')
        self.assertCliError(aws('start-dicom-import-job', '--datastore-id', ds,
                                '--data-access-role-arn', 'arn:aws:iam::12:role/too-short-account',
                                '--input-s3-uri', 's3://bucket/in/',
                                '--output-s3-uri', 's3://bucket/out/', ok=False),
                            'ValidationException')
        aws('delete-datastore', '--datastore-id', ds)

    def test_bad_credentials(self):
        # The second profile of the server's credentials file signs fine.
        aws('list-datastores', profile='second')
        bad = os.path.join(SRV.tmp, 'bad-credentials')
        with open(bad, 'w') as f:
            f.write('[default]\naws_access_key_id = AKIANOTKNOWN00000000\n'
                    'aws_secret_access_key = x\n')
        saved = SRV.cred_file
        SRV.cred_file = bad
        try:
            self.assertCliError(aws('list-datastores', ok=False), 'UnrecognizedClientException')
        finally:
            SRV.cred_file = saved


class CliImageSets(unittest.TestCase):
    """The data-plane commands on an imported sample, as the README's quick start uses them."""

    @classmethod
    def setUpClass(cls):
        global SRV
        cls.main = SRV

        def imp(server):
            p = subprocess.run([ahltest.server_binary(), 'import', '--data-dir', server.data_dir,
                                '--create-datastore', 'cli-samples',
                                '/usr/lib/python3/dist-packages/pydicom/data/test_files/'
                                'CT_small.dcm'], capture_output=True, text=True, timeout=120)
            assert p.returncode == 0, p.stdout + p.stderr
        cls.srv = ahltest.Server(before_start=imp)
        SRV = cls.srv

    @classmethod
    def tearDownClass(cls):
        global SRV
        SRV = cls.main
        rc = cls.srv.stop()
        log = cls.srv.log_text()
        cls.srv.cleanup()
        assert rc == 0, log

    def test_update_versions_revert(self):
        import gzip
        ds = aws('list-datastores')['datastoreSummaries'][0]['datastoreId']
        found = aws('search-image-sets', '--datastore-id', ds, '--search-criteria',
                    json.dumps({'filters': [{'values': [{'DICOMPatientId': '1CT1'}],
                                             'operator': 'EQUAL'}]}))
        sid = found['imageSetsMetadataSummaries'][0]['imageSetId']
        out = os.path.join(self.srv.tmp, 'metadata.json.gz')
        r = aws('get-image-set-metadata', '--datastore-id', ds, '--image-set-id', sid, out)
        self.assertEqual(r['contentEncoding'], 'gzip')
        with gzip.open(out) as f:
            self.assertEqual(json.load(f)['Patient']['DICOM']['PatientID'], '1CT1')
        updates = json.dumps({'DICOMUpdates': {'updatableAttributes': json.dumps(
            {'SchemaVersion': 1.1, 'Patient': {'DICOM': {'PatientName': 'CLI^EDIT'}}})}})
        r = aws('update-image-set-metadata', '--datastore-id', ds, '--image-set-id', sid,
                '--latest-version-id', '1', '--update-image-set-metadata-updates', updates)
        self.assertEqual((r['latestVersionId'], r['imageSetState']), ('2', 'LOCKED'))
        p = aws('update-image-set-metadata', '--datastore-id', ds, '--image-set-id', sid,
                '--latest-version-id', '1', '--update-image-set-metadata-updates', updates,
                ok=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn('(ConflictException)', p.stderr)
        aws('get-image-set-metadata', '--datastore-id', ds, '--image-set-id', sid, out)
        with gzip.open(out) as f:
            self.assertEqual(json.load(f)['Patient']['DICOM']['PatientName'], 'CLI^EDIT')
        v = aws('list-image-set-versions', '--datastore-id', ds, '--image-set-id', sid)
        self.assertEqual([x['versionId'] for x in v['imageSetPropertiesList']], ['2', '1'])
        r = aws('update-image-set-metadata', '--datastore-id', ds, '--image-set-id', sid,
                '--latest-version-id', '2', '--update-image-set-metadata-updates',
                json.dumps({'revertToVersionId': '1'}))
        self.assertEqual(r['latestVersionId'], '3')
        g = aws('get-image-set', '--datastore-id', ds, '--image-set-id', sid, '--version-id', '2')
        self.assertEqual(g['versionId'], '2')


def read(path):
    with open(path) as f:
        return f.read()


class ServeOptions(unittest.TestCase):
    """`ahilite serve` itself: --help, bad options, and the credentials it generates."""

    def run_serve(self, *args, env=None):
        return subprocess.run([ahltest.server_binary(), 'serve', *args], capture_output=True,
                              text=True, timeout=30, env=env)

    def test_help_and_bad_options(self):
        p = self.run_serve('--help')
        self.assertEqual(p.returncode, 0)
        for opt in ('--data-dir', '--listen', '--credentials', '--region', '--account-id',
                    '--s3-root', '--s3-endpoint', '--workers', '--http-threads',
                    '--access-flush-s', '--archive-days', '--job-max-files', '--job-max-mib',
                    '--job-max-concurrent', 'AWS_DISABLE_HOST_PREFIX_INJECTION'):
            self.assertIn(opt, p.stdout)
        for bad in (['--listen', 'nowhere'], ['--account-id', '123'], ['--workers', '0'],
                    ['--http-threads', '0'], ['--http-threads', '1025'], ['--bogus'], ['--region'],
                    ['--job-max-files', '0'], ['--job-max-concurrent', '-1']):
            p = self.run_serve(*bad)
            self.assertEqual(p.returncode, 2, (bad, p.stderr))
            self.assertTrue(p.stderr.strip())

    def test_generated_credentials(self):
        import stat
        import tempfile
        import time
        tmp = tempfile.mkdtemp(prefix='ahilite-gen-')
        data = os.path.join(tmp, 'data')
        port = ahltest.free_port()
        env = os.environ.copy()
        env.pop('AHILITE_ACCESS_KEY_ID', None)
        env.pop('AHILITE_SECRET_ACCESS_KEY', None)
        log = open(os.path.join(tmp, 'log'), 'w')
        proc = subprocess.Popen([ahltest.server_binary(), 'serve', '--data-dir', data,
                                 '--listen', '127.0.0.1:%d' % port], stdout=log,
                                stderr=subprocess.STDOUT, env=env)
        try:
            cred = os.path.join(data, 'credentials')
            deadline = time.time() + 20
            while time.time() < deadline:
                if os.path.exists(cred) and 'listening' in read(log.name):
                    break
                time.sleep(0.05)
            self.assertEqual(stat.S_IMODE(os.stat(cred).st_mode), 0o600)
            self.assertIn(cred, read(log.name))
            text = read(cred)
            key = text.split('aws_access_key_id = ')[1].split()[0]
            secret = text.split('aws_secret_access_key = ')[1].split()[0]

            class S:  # what boto3_client needs of a server
                endpoint = 'http://127.0.0.1:%d' % port
            mi = ahltest.boto3_client(S, key, secret)
            self.assertEqual(mi.list_datastores()['datastoreSummaries'], [])
        finally:
            proc.terminate()
            self.assertEqual(proc.wait(timeout=15), 0)
            log.close()
        # A restart keeps the same key pair.
        before = read(cred)
        proc = subprocess.Popen([ahltest.server_binary(), 'serve', '--data-dir', data,
                                 '--listen', '127.0.0.1:%d' % port], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env=env)
        time.sleep(0.5)
        proc.terminate()
        self.assertEqual(proc.wait(timeout=15), 0)
        self.assertEqual(read(cred), before)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    unittest.main(verbosity=2)
