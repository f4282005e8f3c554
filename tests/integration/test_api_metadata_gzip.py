"""GetImageSetMetadata's gzip body through the real clients, on a 150-instance CT series (several
leaves of the Instances map, so several group segments): boto3 and the AWS CLI read it, `gzip -t`
and one zlib inflate call accept it as a single member, it is within 1.5 times `gzip -6` of the
same JSON, and after an update of one instance both the new version and the old one read back
with the right content. The same checks run against a server started with --metadata-cache 0,
whose bodies are spliced from each instance's own segment (larger, the same JSON)."""
import copy
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ahltest  # noqa: E402

UID_ROOT = '1.2.826.0.1.3680043.10.77.'
N = 150


def aws_binary():
    here = os.path.join(os.path.dirname(sys.executable), 'aws')
    return here if os.path.exists(here) else shutil.which('aws')


class MetadataGzip(unittest.TestCase):
    extra_args = ()
    within_gzip6 = True

    @classmethod
    def setUpClass(cls):
        cls.srv = ahltest.Server(extra_args=cls.extra_args,
                                 before_start=lambda s: ahltest.import_series(s, N, UID_ROOT, 'gz'))
        cls.mi = ahltest.boto3_client(cls.srv)
        cls.ds = cls.mi.list_datastores()['datastoreSummaries'][0]['datastoreId']
        sets = cls.mi.search_image_sets(datastoreId=cls.ds)['imageSetsMetadataSummaries']
        assert len(sets) == 1, sets
        cls.sid = sets[0]['imageSetId']

    @classmethod
    def tearDownClass(cls):
        cls.srv.finish()

    def blob(self, version=None):
        kw = {'versionId': version} if version else {}
        r = self.mi.get_image_set_metadata(datastoreId=self.ds, imageSetId=self.sid, **kw)
        self.assertEqual((r['contentType'], r['contentEncoding']), ('application/json', 'gzip'))
        return r['imageSetMetadataBlob'].read()

    def cli_metadata(self, version=None):
        if not aws_binary():
            self.skipTest('the AWS CLI is not installed')
        env = dict(os.environ, AWS_SHARED_CREDENTIALS_FILE=self.srv.cred_file,
                   AWS_CONFIG_FILE=os.devnull, AWS_DEFAULT_REGION=ahltest.REGION,
                   AWS_DISABLE_HOST_PREFIX_INJECTION='true', AWS_MAX_ATTEMPTS='1')
        for k in ('AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE'):
            env.pop(k, None)
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, 'm.json.gz')
            args = [aws_binary(), 'medical-imaging', 'get-image-set-metadata', '--datastore-id',
                    self.ds, '--image-set-id', self.sid, '--endpoint-url', self.srv.endpoint]
            if version:
                args += ['--version-id', version]
            p = subprocess.run(args + [out], env=env, capture_output=True, text=True, timeout=120)
            self.assertEqual(p.returncode, 0, p.stderr)
            with gzip.open(out) as f:
                return json.load(f)

    def check_member(self, raw):
        """One gzip member, as gzip(1) and a single zlib inflate call see it; returns the text."""
        with tempfile.NamedTemporaryFile(suffix='.gz') as f:
            f.write(raw)
            f.flush()
            p = subprocess.run(['gzip', '-t', f.name], capture_output=True, text=True)
            self.assertEqual(p.returncode, 0, p.stderr)
        z = zlib.decompressobj(31)
        text = z.decompress(raw)
        self.assertTrue(z.eof)
        self.assertEqual(z.unused_data, b'')
        self.assertEqual(text, gzip.decompress(raw))
        return text

    def test_update_and_versions(self):
        raw1 = self.blob()
        text1 = self.check_member(raw1)
        doc1 = json.loads(text1)
        series = doc1['Study']['Series']
        self.assertEqual(len(series), 1)
        suid, s = next(iter(series.items()))
        self.assertEqual(len(s['Instances']), N)
        ratio = len(raw1) / len(gzip.compress(text1, 6))
        if self.within_gzip6:
            self.assertLessEqual(ratio, 1.5)
        else:
            self.assertGreater(ratio, 1.5)
        # A warm read is byte for byte the same body.
        self.assertEqual(self.blob(), raw1)

        # Change one instance in the middle of the map.
        iuid = sorted(s['Instances'])[N // 2]
        upd = {'SchemaVersion': 1.1, 'Study': {'Series': {suid: {'Instances': {
            iuid: {'DICOM': {'InstanceNumber': '777'}}}}}}}
        r = self.mi.update_image_set_metadata(
            datastoreId=self.ds, imageSetId=self.sid, latestVersionId='1',
            updateImageSetMetadataUpdates={'DICOMUpdates': {
                'updatableAttributes': json.dumps(upd).encode()}})
        self.assertEqual(r['latestVersionId'], '2')
        expected = copy.deepcopy(doc1)
        expected['Study']['Series'][suid]['Instances'][iuid]['DICOM']['InstanceNumber'] = '777'

        doc2 = json.loads(self.check_member(self.blob()))
        self.assertEqual(doc2, expected)
        self.assertEqual(json.loads(self.check_member(self.blob('2'))), expected)
        self.assertEqual(json.loads(self.check_member(self.blob('1'))), doc1)
        self.assertEqual(self.cli_metadata(), expected)
        self.assertEqual(self.cli_metadata('1'), doc1)


class MetadataGzipNoCache(MetadataGzip):
    """--metadata-cache 0: each instance's own segment, the same documents."""
    extra_args = ('--metadata-cache', '0')
    within_gzip6 = False


if __name__ == '__main__':
    unittest.main(verbosity=2)
