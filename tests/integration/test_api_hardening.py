"""Small hardening checks through the real server: CreateDatastore keeps to the 50-tag limit
TagResource enforces; a percent-encoded NUL in a path label or query value is refused; the data
directory and the database files are private whatever the umask; a credentials file that defines
an access key twice is refused at start, and one other users can read is warned about."""
import os
import stat
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ahltest  # noqa: E402

SRV = None
MI = None


def setUpModule():
    global SRV, MI
    # Everything the server creates must be private even with a umask that takes nothing away.
    old = os.umask(0)
    try:
        SRV = ahltest.Server()
    finally:
        os.umask(old)
    MI = ahltest.boto3_client(SRV)


def tearDownModule():
    SRV.finish()


class Tags(unittest.TestCase):
    def test_create_datastore_refuses_51_tags(self):
        tags = {'k%02d' % i: 'v' for i in range(51)}
        before = MI.list_datastores()['datastoreSummaries']
        with self.assertRaises(MI.exceptions.ValidationException) as cm:
            MI.create_datastore(datastoreName='tagged', clientToken='fifty-one', tags=tags)
        self.assertIn('at most 50 tags', cm.exception.response['Error']['Message'])
        self.assertEqual(MI.list_datastores()['datastoreSummaries'], before)

    def test_create_datastore_accepts_50_tags(self):
        tags = {'k%02d' % i: 'v' for i in range(50)}
        ds = MI.create_datastore(datastoreName='tagged', clientToken='fifty', tags=tags)
        arn = MI.get_datastore(datastoreId=ds['datastoreId'])['datastoreProperties']['datastoreArn']
        self.assertEqual(len(MI.list_tags_for_resource(resourceArn=arn)['tags']), 50)


class Nul(unittest.TestCase):
    def test_nul_in_path_label(self):
        ds = MI.create_datastore(datastoreName='nul', clientToken='nul')['datastoreId']
        self.assertEqual(ahltest.raw('GET', SRV.endpoint, '/datastore/' + ds)[0], 200)
        status, etype, msg = ahltest.error_of(
            ahltest.raw('GET', SRV.endpoint, '/datastore/%s%%00junk' % ds))
        self.assertEqual((status, etype), (400, 'ValidationException'), msg)
        self.assertIn('NUL', msg)

    def test_nul_in_query_value(self):
        status, etype, msg = ahltest.error_of(
            ahltest.raw('GET', SRV.endpoint, '/datastore', query='datastoreStatus=ACTIVE%00x'))
        self.assertEqual((status, etype), (400, 'ValidationException'), msg)
        self.assertIn('NUL', msg)


class Permissions(unittest.TestCase):
    @unittest.skipIf(ahltest.on_postgres(), 'SQLite database files; on PostgreSQL there are none')
    def test_data_directory_and_database_are_private(self):
        MI.create_datastore(datastoreName='perm', clientToken='perm')  # the WAL holds a write
        modes = {}
        for name in ('', 'ahilite.db', 'ahilite.db-wal', 'ahilite.db-shm'):
            path = os.path.join(SRV.data_dir, name)
            modes[name or 'data directory'] = oct(stat.S_IMODE(os.stat(path).st_mode))
        self.assertEqual(modes, {'data directory': '0o700', 'ahilite.db': '0o600',
                                 'ahilite.db-wal': '0o600', 'ahilite.db-shm': '0o600'})


class Credentials(unittest.TestCase):
    def serve_with(self, text, mode):
        """Starts the server on a credentials file; returns (exit status or None, log)."""
        d = os.path.join(SRV.tmp, 'creds-%o' % mode)
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, 'credentials')
        with open(path, 'w') as f:
            f.write(text)
        os.chmod(path, mode)
        p = subprocess.Popen([ahltest.server_binary(), 'serve', '--data-dir', os.path.join(d, 'data'),
                              '--listen', '127.0.0.1:%d' % ahltest.free_port(),
                              '--credentials', path], stderr=subprocess.PIPE, text=True)
        try:
            log = p.communicate(timeout=3)[1]
            return p.returncode, log
        except subprocess.TimeoutExpired:
            p.terminate()
            return None, p.communicate(timeout=15)[1]

    def test_duplicate_access_key_refused(self):
        rc, log = self.serve_with(
            '[a]\naws_access_key_id = AKIADUP\naws_secret_access_key = one\n'
            '[b]\naws_access_key_id = AKIADUP\naws_secret_access_key = two\n', 0o600)
        self.assertEqual(rc, 1, log)
        self.assertIn('access key AKIADUP is defined a second time', log)

    def test_readable_file_warned_about(self):
        rc, log = self.serve_with(
            '[a]\naws_access_key_id = AKIAREAD\naws_secret_access_key = one\n', 0o644)
        self.assertIsNone(rc, log)  # still running: a warning, not a refusal
        self.assertIn('is readable by every user (mode 644)', log)


if __name__ == '__main__':
    unittest.main()
