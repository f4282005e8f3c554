"""The rendered-answer cache and gzip of DICOMweb metadata (docs/dicomweb.md#performance), end
to end through the server: pydicom's CT and MR samples imported with `ahilite import`, requests
signed with botocore. A repeated answer is the same bytes; an UpdateImageSetMetadata through boto3
shows in the very next series, instance and study answer; an older version chosen with versionId
is still answered; answers for two Host headers name their own host; gzip answers decode to the
same JSON, a client that does not accept gzip gets plain JSON; a deleted set is not answered from
the cache, frames included; a frame damaged on disk after its instance was kept is refused (500),
not served; and a server started with --dicomweb-cache 0 answers the same."""
import gzip
import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ahltest  # noqa: E402

SAMPLES = '/usr/lib/python3/dist-packages/pydicom/data/test_files'
CT = os.path.join(SAMPLES, 'CT_small.dcm')
MR = os.path.join(SAMPLES, 'MR_small.dcm')


def uids(path):
    p = subprocess.run(['/usr/bin/python3', '-c',
                        'import sys, pydicom; d = pydicom.dcmread(sys.argv[1]); '
                        'print(d.StudyInstanceUID, d.SeriesInstanceUID, d.SOPInstanceUID)',
                        path], capture_output=True, text=True, check=True)
    return p.stdout.split()


class Cache(unittest.TestCase):
    extra_args = ()

    @classmethod
    def setUpClass(cls):
        cls.srv = ahltest.Server(extra_args=cls.extra_args, before_start=lambda s: (
            ahltest.import_files(s, 'cache', [CT, MR])))
        cls.mi = ahltest.boto3_client(cls.srv)
        cls.ds = cls.mi.list_datastores()['datastoreSummaries'][0]['datastoreId']

    @classmethod
    def tearDownClass(cls):
        cls.srv.finish()

    def get(self, path, query='', endpoint=None, headers=None):
        return ahltest.raw('GET', endpoint or self.srv.endpoint,
                           '/datastore/%s%s' % (self.ds, path), query, headers=headers)

    def get_json(self, path, query='', endpoint=None):
        status, headers, body = self.get(path, query, endpoint)
        self.assertEqual(status, 200, body[:500])
        self.assertNotIn('content-encoding', headers)
        return json.loads(body)

    def set_of(self, study):
        r = self.mi.search_image_sets(datastoreId=self.ds, searchCriteria={'filters': [
            {'values': [{'DICOMStudyInstanceUID': study}], 'operator': 'EQUAL'}]})
        return r['imageSetsMetadataSummaries'][0]['imageSetId']

    def update_name(self, set_id, name):
        latest = self.mi.get_image_set(datastoreId=self.ds, imageSetId=set_id)['versionId']
        change = {'SchemaVersion': 1.1, 'Patient': {'DICOM': {'PatientName': name}}}
        self.mi.update_image_set_metadata(
            datastoreId=self.ds, imageSetId=set_id, latestVersionId=latest,
            updateImageSetMetadataUpdates={'DICOMUpdates': {
                'updatableAttributes': json.dumps(change).encode()}})
        return latest

    def test_1_repeat_same_bytes_and_update_shows_at_once(self):
        study, series, sop = uids(CT)
        paths = ['/studies/%s/series/%s/metadata' % (study, series),
                 '/studies/%s/series/%s/instances/%s/metadata' % (study, series, sop),
                 '/studies/%s/metadata' % study]
        first = [self.get(p)[2] for p in paths]
        for p, body in zip(paths, first):
            self.assertEqual(self.get(p)[2], body, p)
        set_id = self.set_of(study)
        old = self.update_name(set_id, 'Cached^Not')
        for p in paths:
            got = self.get_json(p)
            self.assertEqual(got[0]['00100010']['Value'], [{'Alphabetic': 'Cached^Not'}], p)
        # The old version is still answered, as it was, when asked for.
        v_old = self.get_json(paths[0], 'imageSetId=%s&versionId=%s' % (set_id, old))
        self.assertEqual(json.dumps(v_old[0]['00100010']), json.dumps(json.loads(first[0])[0]['00100010']))
        self.assertTrue(v_old[0]['7FE00010']['BulkDataURI'].endswith(
            '?imageSetId=%s&versionId=%s' % (set_id, old)))
        # A second update, straight after a cached answer of the first.
        self.update_name(set_id, 'Cached^Again')
        got = self.get_json(paths[0])
        self.assertEqual(got[0]['00100010']['Value'], [{'Alphabetic': 'Cached^Again'}])

    def test_2_host_and_selection_change_the_answer(self):
        study, series, _ = uids(CT)
        path = '/studies/%s/series/%s/metadata' % (study, series)
        port = self.srv.endpoint.rsplit(':', 1)[1]
        a = self.get_json(path)
        b = self.get_json(path, endpoint='http://localhost:%s' % port)
        c = self.get_json(path)
        self.assertIn('://127.0.0.1:%s/' % port, a[0]['7FE00010']['BulkDataURI'])
        self.assertIn('://localhost:%s/' % port, b[0]['7FE00010']['BulkDataURI'])
        self.assertEqual(a, c)
        set_id = self.set_of(study)
        d = self.get_json(path, 'imageSetId=%s' % set_id)
        self.assertTrue(d[0]['7FE00010']['BulkDataURI'].endswith('?imageSetId=%s' % set_id))
        self.assertFalse(a[0]['7FE00010']['BulkDataURI'].endswith(set_id))

    def test_3_gzip(self):
        study, series, _ = uids(CT)
        path = '/studies/%s/series/%s/metadata' % (study, series)
        plain = self.get(path)[2]
        for ae in ('gzip', 'br, gzip;q=0.5', '*'):
            for _ in range(2):  # rendered, then from the cache
                status, headers, body = self.get(path, headers={'Accept-Encoding': ae})
                self.assertEqual(status, 200)
                self.assertEqual(headers.get('content-encoding'), 'gzip', ae)
                self.assertEqual(headers['content-type'], 'application/dicom+json')
                self.assertEqual(gzip.decompress(body), plain)
                self.assertEqual(json.loads(gzip.decompress(body)), json.loads(plain))
        for ae in ('identity', 'gzip;q=0', 'deflate'):
            status, headers, body = self.get(path, headers={'Accept-Encoding': ae})
            self.assertNotIn('content-encoding', headers, ae)
            self.assertEqual(body, plain)
        # gzip for an uncached study answer too, and errors stay plain JSON.
        status, headers, body = self.get('/studies/%s/metadata' % study,
                                         headers={'Accept-Encoding': 'gzip'})
        self.assertEqual(json.loads(gzip.decompress(body)), json.loads(self.get(
            '/studies/%s/metadata' % study)[2]))
        status, headers, body = self.get('/studies/1.2.3/series/4.5/metadata',
                                         headers={'Accept-Encoding': 'gzip'})
        self.assertEqual(status, 404)
        self.assertNotIn('content-encoding', headers)
        self.assertEqual(json.loads(body)['__type'], 'ResourceNotFoundException')

    def test_4_deleted_set_is_not_served(self):
        study, series, sop = uids(MR)
        set_id = self.set_of(study)
        paths = [('/studies/%s/series/%s/metadata' % (study, series), ''),
                 ('/studies/%s/series/%s/instances/%s/frames/1' % (study, series, sop), ''),
                 ('/studies/%s/series/%s/metadata' % (study, series), 'imageSetId=' + set_id),
                 ('/studies/%s/series/%s/instances/%s/metadata' % (study, series, sop), ''),
                 ('/studies/%s/metadata' % study, '')]
        for p, q in paths:
            for ae in (None, 'gzip'):
                status, _, body = self.get(p, q, headers={'Accept-Encoding': ae} if ae else None)
                self.assertEqual(status, 200, body)
        self.mi.delete_image_set(datastoreId=self.ds, imageSetId=set_id)
        for p, q in paths:
            for ae in (None, 'gzip'):
                status, headers, body = self.get(p, q,
                                                 headers={'Accept-Encoding': ae} if ae else None)
                self.assertEqual(status, 404, (p, q, body[:200]))
                self.assertEqual(json.loads(body)['__type'], 'ResourceNotFoundException')


    @unittest.skipIf(ahltest.frames_in_bucket(), 'damages a file under DATA_DIR/frames; frames '
                     'are in a bucket in this run (test_frames_s3.py damages objects)')
    def test_5_damaged_frame_is_never_served(self):
        study, series, sop = uids(CT)
        path = '/studies/%s/series/%s/instances/%s/frames/1' % (study, series, sop)
        for accept in (None, 'multipart/related; type="application/octet-stream"; '
                             'transfer-syntax=*'):
            h = {'Accept': accept} if accept else None
            for _ in range(2):  # the instance is kept after the first
                status, _, body = self.get(path, headers=h)
                self.assertEqual(status, 200, body[:300])
        damaged = []
        for d, _, files in os.walk(os.path.join(self.srv.data_dir, 'frames')):
            for f in files:
                p = os.path.join(d, f)
                os.chmod(p, 0o644)
                with open(p, 'r+b') as fh:
                    b = fh.read(1)
                    fh.seek(0)
                    fh.write(bytes([b[0] ^ 0xFF]))
                damaged.append(p)
        self.assertTrue(damaged)
        try:
            for accept in (None, 'multipart/related; type="application/octet-stream"; '
                                 'transfer-syntax=*'):
                h = {'Accept': accept} if accept else None
                status, _, body = self.get(path, headers=h)
                self.assertEqual(status, 500, body[:300])
        finally:
            for p in damaged:
                with open(p, 'r+b') as fh:
                    b = fh.read(1)
                    fh.seek(0)
                    fh.write(bytes([b[0] ^ 0xFF]))
        self.assertEqual(self.get(path)[0], 200)


class NoCache(Cache):
    """The same behaviour with the cache turned off."""
    extra_args = ('--dicomweb-cache', '0')


if __name__ == '__main__':
    unittest.main(verbosity=2)
