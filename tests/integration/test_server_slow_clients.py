"""No mix of clients can hang the server: slow and stalled readers of GetImageSetMetadata, with
12 clients looping GetImageSetMetadata and 4 looping GetImageSet on `serve --http-threads 2`.

One image set of 1,800 CT instances (about 170 KB of gzipped metadata, more than the socket
buffers hold) is imported before the server starts. Stalled readers send a signed GetImageSetMetadata and never read the answer (their
receive buffer is made small, so the server cannot finish sending); slow readers read a few bytes
a second. While they hang on, every looping client must keep completing requests, a fresh client
must be answered, and SIGTERM must stop the server within seconds with the stalled connections
still open."""
# pg: no (slow HTTP clients: no storage in question)
import gzip
import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ahltest  # noqa: E402

N = 1800
ROOT = '1.2.826.0.1.3680043.9.7781.'


def import_series(server):
    ahltest.import_series(server, N, ROOT, 'slow')


class SlowClients(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = ahltest.Server(before_start=import_series)
        mi = ahltest.boto3_client(cls.srv)
        ds = mi.list_datastores()['datastoreSummaries'][0]['datastoreId']
        s = mi.search_image_sets(datastoreId=ds, searchCriteria={'filters': [{
            'values': [{'DICOMStudyInstanceUID': ROOT + '1'}], 'operator': 'EQUAL'}]})
        sets = s['imageSetsMetadataSummaries']
        assert len(sets) == 1, sets
        cls.ds, cls.set = ds, sets[0]['imageSetId']
        cls.meta_path = '/datastore/%s/imageSet/%s/getImageSetMetadata' % (ds, cls.set)
        cls.get_path = '/datastore/%s/imageSet/%s/getImageSet' % (ds, cls.set)

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()
        cls.srv.cleanup()

    def metadata_size(self):
        status, _, body = ahltest.raw('POST', self.srv.endpoint, self.meta_path)
        self.assertEqual(status, 200)
        self.assertGreater(len(gzip.decompress(body)), 0)
        return len(body)

    def test_1_mix_with_stalled_and_slow_readers(self):
        size = self.metadata_size()
        self.assertGreater(size, 150_000, 'the set must have sizeable metadata')
        ep = self.srv.endpoint
        stalled = [ahltest.stalled_reader(ep, 'POST', self.meta_path) for _ in range(8)]
        slow = [ahltest.stalled_reader(ep, 'POST', self.meta_path) for _ in range(8)]
        stop = threading.Event()
        counts, errors = {}, []

        threads = [threading.Thread(target=ahltest.trickle, args=(s, stop)) for s in slow]
        threads += [threading.Thread(target=ahltest.request_loop, args=(
            'meta%d' % i, 'POST', ep, self.meta_path, stop, counts, errors)) for i in range(12)]
        threads += [threading.Thread(target=ahltest.request_loop, args=(
            'get%d' % i, 'POST', ep, self.get_path, stop, counts, errors)) for i in range(4)]
        for t in threads:
            t.start()
        try:
            time.sleep(8)
            # A client arriving now is answered, as are the loops.
            status, _, _ = ahltest.raw('GET', ep, '/datastore/%s' % self.ds)
            self.assertEqual(status, 200)
            before = dict(counts)
            time.sleep(3)
        finally:
            stop.set()
            for t in threads:
                t.join(60)
        self.assertEqual(errors, [])
        for name, n in counts.items():
            self.assertGreater(n, before.get(name, 0), '%s made no progress' % name)
        # The stalled readers are still connected, still costing only their own connections.
        status, _, _ = ahltest.raw('POST', ep, self.get_path)
        self.assertEqual(status, 200)
        for s in slow:
            s.close()
        for s in stalled:
            s.close()

    def test_2_sigterm_with_stalled_readers(self):
        ep = self.srv.endpoint
        stalled = [ahltest.stalled_reader(ep, 'POST', self.meta_path) for _ in range(16)]
        time.sleep(1)
        t0 = time.time()
        rc = self.srv.stop()  # raises if the server is still running 15 s after SIGTERM
        self.assertEqual(rc, 0, self.srv.log_text()[-2000:])
        self.assertLess(time.time() - t0, 15)
        for s in stalled:
            s.close()


if __name__ == '__main__':
    unittest.main()
