"""`ahilite serve --aws-primary-rules` through boto3: on a primary image set, Patient- and
Series-level updates and forced UID changes are refused with ValidationException and change
nothing, while Study-level updates still work; without the option the same Patient-level update is
accepted (the API as first specified)."""
import gzip
import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ahltest  # noqa: E402

CT_FILE = '/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm'
SERIES_UID = '1.3.6.1.4.1.5962.1.3.1.1.20040119072730.12322'


def import_ct(server):
    p = subprocess.run([ahltest.server_binary(), 'import', '--data-dir', server.data_dir,
                        '--create-datastore', 'rules', CT_FILE],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr


def blob(doc):
    return json.dumps(doc).encode()


class PrimaryRules(unittest.TestCase):
    def run_server(self, extra):
        srv = ahltest.Server(extra_args=extra, before_start=import_ct)
        self.addCleanup(srv.cleanup)
        self.addCleanup(srv.stop)
        mi = ahltest.boto3_client(srv)
        ds = mi.list_datastores()['datastoreSummaries'][0]['datastoreId']
        sets = mi.search_image_sets(datastoreId=ds)['imageSetsMetadataSummaries']
        self.assertEqual(len(sets), 1)
        self.assertTrue(sets[0]['isPrimary'])
        return mi, ds, sets[0]['imageSetId']

    def update(self, mi, ds, set_id, latest, doc, force=False):
        return mi.update_image_set_metadata(
            datastoreId=ds, imageSetId=set_id, latestVersionId=str(latest), force=force,
            updateImageSetMetadataUpdates={'DICOMUpdates': {'updatableAttributes': blob(doc)}})

    def document(self, mi, ds, set_id):
        r = mi.get_image_set_metadata(datastoreId=ds, imageSetId=set_id)
        return json.loads(gzip.decompress(r['imageSetMetadataBlob'].read()))

    def test_aws_rules_refuse_patient_series_and_forced_uid_changes(self):
        mi, ds, set_id = self.run_server(['--aws-primary-rules'])
        before = self.document(mi, ds, set_id)
        refused = [
            ({'SchemaVersion': 1.1, 'Patient': {'DICOM': {'PatientName': 'DOE^JANE'}}}, False),
            ({'SchemaVersion': 1.1, 'Study': {'Series': {SERIES_UID: {
                'DICOM': {'SeriesDescription': 'renamed'}}}}}, False),
            ({'SchemaVersion': 1.1, 'Study': {'Series': {SERIES_UID: {
                'DICOM': {'SeriesInstanceUID': '1.2.3.4'}}}}}, True),
        ]
        for doc, force in refused:
            with self.subTest(doc=doc, force=force):
                with self.assertRaises(mi.exceptions.ValidationException) as cm:
                    self.update(mi, ds, set_id, 1, doc, force)
                self.assertIn('primary', str(cm.exception))
        self.assertEqual(self.document(mi, ds, set_id), before)
        self.assertEqual(mi.get_image_set(datastoreId=ds, imageSetId=set_id)['versionId'], '1')
        r = self.update(mi, ds, set_id, 1,
                        {'SchemaVersion': 1.1, 'Study': {'DICOM': {'StudyDescription': 'fixed'}}})
        self.assertEqual(r['latestVersionId'], '2')
        self.assertEqual(self.document(mi, ds, set_id)['Study']['DICOM']['StudyDescription'],
                         'fixed')

    def test_default_allows_patient_updates_on_primary_sets(self):
        mi, ds, set_id = self.run_server([])
        r = self.update(mi, ds, set_id, 1,
                        {'SchemaVersion': 1.1, 'Patient': {'DICOM': {'PatientName': 'DOE^JANE'}}})
        self.assertEqual(r['latestVersionId'], '2')
        self.assertEqual(self.document(mi, ds, set_id)['Patient']['DICOM']['PatientName'],
                         'DOE^JANE')


if __name__ == '__main__':
    unittest.main(verbosity=2)
