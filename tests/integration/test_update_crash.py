"""Acknowledged metadata updates survive a crash (kill -9) in the middle of concurrent updates.

Eight clients, each on its own image set, loop UpdateImageSetMetadata (PatientName), so updates
share commits (group commit, write intents) and each commit's WAL frames are written at once.
After a few seconds the server is killed with SIGKILL while requests are in flight. A new server
on the same data directory must then show every set at least at the last version its client saw
acknowledged, that version with the name the client sent, no version beyond one more than that
(the one in flight), and `ahilite check` must find the data directory sound.
"""
import gzip
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ahltest  # noqa: E402

SETS = 8
SECONDS = 3


def import_sets(server):
    for k in range(SETS):
        ahltest.import_series(server, 1, '1.2.826.0.1.3680043.9.7781.5.%d.' % k, 'crash%d' % k)


class UpdateCrash(unittest.TestCase):
    def test_acknowledged_updates_survive_kill(self):
        srv = ahltest.Server(before_start=import_sets)
        try:
            acked = self.load_then_kill(srv)
            data = srv.data_dir
            again = ahltest.Server(before_start=lambda s: shutil.copytree(data, s.data_dir))
        finally:
            srv.log.close()
            srv.cleanup()
        try:
            mi = ahltest.boto3_client(again)
            for (ds, sid), (version, name) in acked.items():
                got = int(mi.get_image_set(datastoreId=ds, imageSetId=sid)['versionId'])
                self.assertGreaterEqual(got, version)
                self.assertLessEqual(got, version + 1)  # at most the one in flight
                blob = mi.get_image_set_metadata(datastoreId=ds, imageSetId=sid,
                                                 versionId=str(version))['imageSetMetadataBlob']
                doc = json.loads(gzip.decompress(blob.read()))
                self.assertEqual(doc['Patient']['DICOM']['PatientName'], name)
            again.stop()
            p = subprocess.run([ahltest.server_binary(), 'check', '--data-dir', again.data_dir],
                               capture_output=True, text=True, timeout=300)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        finally:
            again.log.close()
            again.cleanup()

    def load_then_kill(self, srv):
        mi = ahltest.boto3_client(srv)
        sets = []
        for d in mi.list_datastores()['datastoreSummaries']:
            for s in mi.search_image_sets(datastoreId=d['datastoreId'])['imageSetsMetadataSummaries']:
                sets.append((d['datastoreId'], s['imageSetId'], int(s['version'])))
        self.assertEqual(len(sets), SETS)
        acked = {}
        killing = threading.Event()
        errors = []

        def client(ds, sid, version):
            c = ahltest.boto3_client(srv)
            n = 0
            while True:
                name = 'CRASH^%s^%d' % (sid[:6], n)
                upd = {'SchemaVersion': 1.1, 'Patient': {'DICOM': {'PatientName': name}}}
                try:
                    r = c.update_image_set_metadata(
                        datastoreId=ds, imageSetId=sid, latestVersionId=str(version),
                        updateImageSetMetadataUpdates={'DICOMUpdates': {
                            'updatableAttributes': json.dumps(upd).encode()}})
                except Exception as e:  # the kill cuts requests in flight
                    if not killing.is_set():
                        errors.append(repr(e))
                    return
                version = int(r['latestVersionId'])
                acked[(ds, sid)] = (version, name)
                n += 1

        threads = [threading.Thread(target=client, args=s) for s in sets]
        for t in threads:
            t.start()
        time.sleep(SECONDS)
        killing.set()
        srv.proc.kill()  # SIGKILL, with requests in flight
        srv.proc.wait()
        for t in threads:
            t.join(30)
        self.assertEqual(errors, [])
        self.assertEqual(len(acked), SETS, 'every client saw updates acknowledged')
        return acked


if __name__ == '__main__':
    unittest.main()
