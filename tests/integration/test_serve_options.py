"""`ahilite serve`'s connection-limit options and its start-up warnings: out-of-range limits are
refused with exit status 2 and a message naming the option; the limits in force are logged, the
import jobs' node id and leases too, and a renewal period not shorter than the lease is refused; a
server listening beyond loopback without TLS says so, one on loopback does not."""
# pg: full (option parsing; its one store is opened as in every other suite)
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ahltest  # noqa: E402

TLS_WARNING = 'without TLS'


class ServeOptions(unittest.TestCase):
    def test_limits_out_of_range(self):
        cases = [('--max-connections', '3'), ('--max-connections-per-ip', '-1'),
                 ('--header-timeout', '0'), ('--idle-timeout', 'soon'),
                 ('--max-body-memory', '1'), ('--metadata-cache', '-1'),
                 ('--metadata-cache', '2000000'), ('--commit-delay-us', '1000001'),
                 ('--commit-delay-us', '-5'), ('--job-lease-ms', '99'),
                 ('--job-renew-ms', '5'), ('--job-poll-ms', 'often'),
                 ('--job-max-attempts', '0'), ('--access-flush-s', '0'),
                 ('--access-flush-s', '86401'), ('--archive-days', '0'),
                 ('--archive-days', 'month')]
        for name, value in cases:
            p = subprocess.run([ahltest.server_binary(), 'serve', name, value],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(p.returncode, 2, (name, p.stderr))
            self.assertIn(name + ' takes a number from', p.stderr)

    def test_limits_logged_and_no_tls_warning_on_loopback(self):
        srv = ahltest.Server(extra_args=['--max-connections', '100',
                                         '--max-connections-per-ip', '0',
                                         '--header-timeout', '3', '--idle-timeout', '7',
                                         '--max-body-memory', '16'])
        try:
            log = srv.log_text()
        finally:
            srv.stop()
            srv.cleanup()
        self.assertIn('at most 100 connections, 0 per client address (no limit); headers '
                      'within 3s, idle connections closed after 7s; request bodies held at '
                      'once: at most 16 MiB', log)
        self.assertNotIn(TLS_WARNING, log)

    def test_job_leases(self):
        srv = ahltest.Server(extra_args=['--job-lease-ms', '2000', '--job-poll-ms', '100',
                                         '--job-max-attempts', '5'])
        try:
            log = srv.log_text()
        finally:
            srv.stop()
            srv.cleanup()
        self.assertRegex(log, r'import jobs: node [^ ]+-[0-9]+-[0-9a-f]{8}, [0-9]+ workers, '
                              r'lease 2000 ms renewed every 666 ms, at most 5 attempts')
        tmp = ahltest.tempfile.mkdtemp(prefix='ahilite-test-')
        try:
            p = subprocess.run([ahltest.server_binary(), 'serve', '--data-dir', tmp + '/data',
                                '--listen', '127.0.0.1:%d' % ahltest.free_port(),
                                '--job-lease-ms', '1000', '--job-renew-ms', '1000'],
                               capture_output=True, text=True, timeout=30)
        finally:
            ahltest.shutil.rmtree(tmp, ignore_errors=True)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn('must be shorter than the lease', p.stderr)

    def test_tls_warning_beyond_loopback(self):
        tmp = ahltest.tempfile.mkdtemp(prefix='ahilite-test-')
        try:
            p = subprocess.Popen([ahltest.server_binary(), 'serve', '--data-dir', tmp + '/data',
                                  '--listen', '0.0.0.0:%d' % ahltest.free_port()],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            log = ''
            deadline = time.time() + 20
            while 'listening on' not in log and time.time() < deadline:
                line = p.stdout.readline()
                if not line:
                    break
                log += line
            log += p.stdout.readline()  # the warning follows the listening line
            p.terminate()
            log += p.communicate(timeout=15)[0]
            self.assertEqual(p.returncode, 0, log)
        finally:
            ahltest.shutil.rmtree(tmp, ignore_errors=True)
        self.assertIn('listening on 0.0.0.0 without TLS', log)


if __name__ == '__main__':
    unittest.main()
