"""Large DICOMweb retrieves cannot hang the server or fill its memory: a native 16-bit
512x512 instance of 24 frames (12 MiB of pixel data, stored as HTJ2K) is imported before the
server starts (`serve --http-threads 2`). 16 clients ask for the whole instance (decoded, Explicit VR
Little Endian) and for all its frames, then read nothing (small receive buffers, so the server
cannot finish sending); 4 more read a few bytes at a time. While they hang on, looping clients
must keep completing retrieves, frames and metadata requests, a fresh client must be answered,
every answer must be whole, the server's resident memory must stay far below what the stalled
answers would take in memory (they wait in unlinked spool files in DATA_DIR/tmp, which leave no
name behind), and SIGTERM must still stop the server with the stalled connections open."""
# pg: no (slow HTTP clients: no storage in question)
import hashlib
import os
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ahltest  # noqa: E402

FRAMES = 24
STUDY = '1.2.826.0.1.3680043.8.498.7781.1'
SERIES = STUDY + '.1'
SOP = SERIES + '.1'

# A native multi-frame file with noisy 12-bit samples (so HTJ2K cannot shrink it to nothing),
# written with the system Python (pydicom, no NumPy): argv[1] the output, argv[2] the CT sample.
_MAKE = r'''
import random, struct, sys
import pydicom
ds = pydicom.dcmread(sys.argv[2])
ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = sys.argv[3:6]
ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
ds.Rows = ds.Columns = 512
ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
ds.NumberOfFrames = int(sys.argv[6])
rnd = random.Random(7)
frame = bytes(rnd.getrandbits(8) for _ in range(512 * 512 * 2))
frame = bytes(b & 0x0F if i % 2 else b for i, b in enumerate(frame))  # 12 bits
ds.PixelData = b''.join(frame[i:] + frame[:i] for i in range(ds.NumberOfFrames))
ds.save_as(sys.argv[1])
print(len(ds.PixelData))
'''


def import_large(server):
    path = os.path.join(server.tmp, 'large.dcm')
    subprocess.run(['/usr/bin/python3', '-c', _MAKE, path, ahltest.CT_SAMPLE, STUDY, SERIES, SOP,
                    str(FRAMES)], check=True, capture_output=True, timeout=300)
    p = subprocess.run([ahltest.server_binary(), 'import', '--data-dir', server.data_dir,
                        '--create-datastore', 'large', path],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr


def rss_kib(pid):
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    raise AssertionError('no VmRSS')


class SlowRetrieveClients(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = ahltest.Server(before_start=import_large)
        mi = ahltest.boto3_client(cls.srv)
        cls.ds = mi.list_datastores()['datastoreSummaries'][0]['datastoreId']
        base = '/datastore/%s/studies/%s/series/%s/instances/%s' % (cls.ds, STUDY, SERIES, SOP)
        cls.instance = base
        cls.frames = base + '/frames/' + ','.join(str(i + 1) for i in range(FRAMES))
        cls.metadata = base + '/metadata'

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()
        cls.srv.cleanup()

    def test_1_stalled_and_slow_readers_of_large_retrieves(self):
        ep = self.srv.endpoint
        status, headers, whole = ahltest.raw('GET', ep, self.instance)
        self.assertEqual(status, 200)
        self.assertGreater(len(whole), FRAMES * 512 * 512 * 2)
        digest = hashlib.sha256(whole).hexdigest()
        rss_before = rss_kib(self.srv.proc.pid)

        stalled = [ahltest.stalled_reader(ep, 'GET', self.instance) for _ in range(8)]
        stalled += [ahltest.stalled_reader(ep, 'GET', self.frames) for _ in range(8)]
        slow = [ahltest.stalled_reader(ep, 'GET', self.instance) for _ in range(4)]
        stop = threading.Event()
        counts, errors = {}, []

        threads = [threading.Thread(target=ahltest.trickle, args=(s, stop, 256, 0.1))
                   for s in slow]
        threads += [threading.Thread(target=ahltest.request_loop, args=(
            'instance%d' % i, 'GET', ep, self.instance, stop, counts, errors,
            lambda b: hashlib.sha256(b).hexdigest() == digest)) for i in range(2)]
        threads.append(threading.Thread(target=ahltest.request_loop, args=(
            'metadata', 'GET', ep, self.metadata, stop, counts, errors,
            lambda b: b.startswith(b'['))))
        for t in threads:
            t.start()
        try:
            time.sleep(6)
            # A client arriving now is answered, as are the loops.
            status, _, _ = ahltest.raw('GET', ep, '/datastore/%s' % self.ds)
            self.assertEqual(status, 200)
            status, _, body = ahltest.raw('GET', ep, self.frames)
            self.assertEqual(status, 200)
            self.assertGreater(len(body), FRAMES * 512 * 512 * 2)
            before = dict(counts)
            time.sleep(4)
            rss_during = rss_kib(self.srv.proc.pid)
        finally:
            stop.set()
            for t in threads:
                t.join(120)
        self.assertEqual(errors, [])
        for name, n in counts.items():
            self.assertGreater(n, before.get(name, 0), '%s made no progress' % name)
        # 20 answers of 12 MiB each are waiting: in memory they would take 240 MiB.
        self.assertLess(rss_during - rss_before, 100 * 1024,
                        'resident memory grew by %d KiB' % (rss_during - rss_before))
        # The spools have no names: nothing is left in DATA_DIR/tmp for anyone to clean.
        self.assertEqual(os.listdir(os.path.join(self.srv.data_dir, 'tmp')), [])
        for s in slow + stalled:
            s.close()
        status, _, body = ahltest.raw('GET', ep, self.instance)
        self.assertEqual((status, hashlib.sha256(body).hexdigest()), (200, digest))

    def test_2_sigterm_with_stalled_retrieves(self):
        ep = self.srv.endpoint
        stalled = [ahltest.stalled_reader(ep, 'GET', self.instance) for _ in range(8)]
        time.sleep(2)
        rc = self.srv.stop()  # raises if the server is still running 15 s after SIGTERM
        self.assertEqual(rc, 0, self.srv.log_text()[-2000:])
        for s in stalled:
            s.close()


if __name__ == '__main__':
    unittest.main(verbosity=2)
