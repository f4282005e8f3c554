"""Drives `ahilite serve` with boto3: every operation the server can answer without imported data,
their error paths as boto3 surfaces them, and raw signed requests for the malformed inputs boto3
would refuse to send. Run by CTest with AHILITE_BIN and AHILITE_SRC set."""
import base64
import gzip
import json
import os
import sys
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ahltest  # noqa: E402

from botocore.exceptions import ClientError  # noqa: E402

SRV = None
MI = None
ZERO_ID = '0' * 32


def setUpModule():
    global SRV, MI
    SRV = ahltest.Server()
    MI = ahltest.boto3_client(SRV)


def tearDownModule():
    SRV.finish()


def code_of(exc):
    return exc.response['Error']['Code']


def snapshot():
    """Everything the control plane shows, to prove an error changed nothing."""
    stores = MI.list_datastores()['datastoreSummaries']
    tags = {}
    for s in stores:
        tags[s['datastoreId']] = MI.list_tags_for_resource(resourceArn=s['datastoreArn'])['tags']
    return json.dumps([stores, tags], sort_keys=True, default=str)


def new_datastore(name=None, **kw):
    r = MI.create_datastore(datastoreName=name or 'ds-' + uuid.uuid4().hex[:8], **kw)
    return r['datastoreId']


class Datastores(unittest.TestCase):
    def test_create_get_list_delete(self):
        token = str(uuid.uuid4())
        r = MI.create_datastore(datastoreName='lifecycle', clientToken=token,
                                tags={'team': 'imaging'})
        ds = r['datastoreId']
        self.assertRegex(ds, '^[0-9a-z]{32}$')
        self.assertEqual(r['datastoreStatus'], 'CREATING')
        self.assertTrue(r['ResponseMetadata']['RequestId'])

        p = MI.get_datastore(datastoreId=ds)['datastoreProperties']
        self.assertEqual(p['datastoreId'], ds)
        self.assertEqual(p['datastoreName'], 'lifecycle')
        self.assertEqual(p['datastoreStatus'], 'ACTIVE')
        self.assertEqual(p['datastoreArn'],
                         'arn:aws:medical-imaging:us-east-1:123456789012:datastore/' + ds)
        self.assertEqual(p['losslessStorageFormat'], 'HTJ2K')
        age = time.time() - p['createdAt'].timestamp()
        self.assertTrue(-5 < age < 60, age)

        ids = [s['datastoreId'] for s in MI.list_datastores()['datastoreSummaries']]
        self.assertIn(ds, ids)
        active = MI.list_datastores(datastoreStatus='ACTIVE')['datastoreSummaries']
        self.assertIn(ds, [s['datastoreId'] for s in active])
        self.assertEqual(MI.list_datastores(datastoreStatus='DELETED')['datastoreSummaries'], [])

        # Same token, same parameters: the same data store, nothing new.
        again = MI.create_datastore(datastoreName='lifecycle', clientToken=token,
                                    tags={'team': 'imaging'})
        self.assertEqual(again['datastoreId'], ds)
        # Same token, other parameters: a conflict.
        with self.assertRaises(ClientError) as cm:
            MI.create_datastore(datastoreName='other-name', clientToken=token)
        self.assertEqual(code_of(cm.exception), 'ConflictException')
        self.assertEqual(cm.exception.response['ResponseMetadata']['HTTPStatusCode'], 409)

        d = MI.delete_datastore(datastoreId=ds)
        self.assertEqual((d['datastoreId'], d['datastoreStatus']), (ds, 'DELETING'))
        # A tombstone: DELETED until it expires (docs/decisions.md#tombstones), without tags.
        p = MI.get_datastore(datastoreId=ds)['datastoreProperties']
        self.assertEqual(p['datastoreStatus'], 'DELETED')
        self.assertEqual(MI.delete_datastore(datastoreId=ds)['datastoreStatus'], 'DELETED')
        self.assertEqual([s['datastoreId'] for s in MI.list_datastores(
            datastoreStatus='DELETED')['datastoreSummaries']], [ds])
        self.assertNotIn(ds, [s['datastoreId'] for s in MI.list_datastores(
            datastoreStatus='ACTIVE')['datastoreSummaries']])
        arn = 'arn:aws:medical-imaging:us-east-1:123456789012:datastore/' + ds
        self.assertEqual(MI.list_tags_for_resource(resourceArn=arn)['tags'], {})
        with self.assertRaises(MI.exceptions.ConflictException):
            MI.tag_resource(resourceArn=arn, tags={'a': 'b'})
        # Its token still names it.
        self.assertEqual(MI.create_datastore(datastoreName='lifecycle', clientToken=token,
                                             tags={'team': 'imaging'})['datastoreStatus'],
                         'DELETED')

    def test_create_options(self):
        kms = 'arn:aws:kms:us-east-1:123456789012:alias/my-key'
        lam = 'arn:aws:lambda:us-east-1:123456789012:function:authz'
        ds = new_datastore('opts', kmsKeyArn=kms, lambdaAuthorizerArn=lam,
                           losslessStorageFormat='JPEG_2000_LOSSLESS')
        p = MI.get_datastore(datastoreId=ds)['datastoreProperties']
        self.assertEqual(p['kmsKeyArn'], kms)
        self.assertEqual(p['lambdaAuthorizerArn'], lam)
        self.assertEqual(p['losslessStorageFormat'], 'JPEG_2000_LOSSLESS')
        MI.delete_datastore(datastoreId=ds)

    def test_paging(self):
        made = [new_datastore('page-%d' % i) for i in range(5)]
        seen, token, pages = [], None, 0
        while True:
            kw = {'maxResults': 2}
            if token:
                kw['nextToken'] = token
            r = MI.list_datastores(**kw)
            self.assertLessEqual(len(r['datastoreSummaries']), 2)
            seen += [s['datastoreId'] for s in r['datastoreSummaries']]
            pages += 1
            token = r.get('nextToken')
            if not token:
                break
        self.assertEqual(len(seen), len(set(seen)))
        for ds in made:
            self.assertIn(ds, seen)
        self.assertGreaterEqual(pages, 3)
        # The SDK paginator walks the same pages.
        pag = MI.get_paginator('list_datastores')
        all_ids = [s['datastoreId'] for page in pag.paginate(PaginationConfig={'PageSize': 2})
                   for s in page['datastoreSummaries']]
        self.assertEqual(sorted(all_ids), sorted(seen))
        with self.assertRaises(MI.exceptions.ValidationException):
            MI.list_datastores(nextToken='bm90LWEtdG9rZW4=')
        for ds in made:
            MI.delete_datastore(datastoreId=ds)

    def test_validation_errors(self):
        before = snapshot()
        for kw, needle in [
            ({'datastoreName': 'has space'}, "at 'datastoreName' failed to satisfy constraint: "
                                             "Member must satisfy regular expression pattern"),
            ({'datastoreName': 'x' * 257}, 'Member must have length less than or equal to 256'),
            ({'datastoreName': 'ok', 'tags': {'aws:reserved': 'v'}}, 'Map keys must satisfy'),
            ({'datastoreName': 'ok', 'kmsKeyArn': 'not-an-arn'}, "at 'kmsKeyArn'"),
        ]:
            with self.assertRaises(MI.exceptions.ValidationException) as cm:
                MI.create_datastore(**kw)
            self.assertIn(needle, str(cm.exception))
            self.assertIn('validation error detected', str(cm.exception))
        with self.assertRaises(MI.exceptions.ValidationException) as cm:
            MI.get_datastore(datastoreId='NOT-AN-ID')
        self.assertIn("Value 'NOT-AN-ID' at 'datastoreId' failed to satisfy constraint: Member "
                      "must satisfy regular expression pattern: [0-9a-z]{32}", str(cm.exception))
        with self.assertRaises(MI.exceptions.ResourceNotFoundException):
            MI.get_datastore(datastoreId=ZERO_ID)
        self.assertEqual(snapshot(), before)


class Tags(unittest.TestCase):
    def test_tag_untag_list(self):
        ds = new_datastore('tags', tags={'a': '1', 'b': '2'})
        arn = MI.get_datastore(datastoreId=ds)['datastoreProperties']['datastoreArn']
        self.assertEqual(MI.list_tags_for_resource(resourceArn=arn)['tags'], {'a': '1', 'b': '2'})
        MI.tag_resource(resourceArn=arn, tags={'b': 'two', 'c': '', 'path/x:y': 'v'})
        self.assertEqual(MI.list_tags_for_resource(resourceArn=arn)['tags'],
                         {'a': '1', 'b': 'two', 'c': '', 'path/x:y': 'v'})
        MI.untag_resource(resourceArn=arn, tagKeys=['a', 'path/x:y', 'not-there'])
        self.assertEqual(MI.list_tags_for_resource(resourceArn=arn)['tags'], {'b': 'two', 'c': ''})
        MI.untag_resource(resourceArn=arn, tagKeys=[])
        self.assertEqual(MI.list_tags_for_resource(resourceArn=arn)['tags'], {'b': 'two', 'c': ''})

        before = snapshot()
        with self.assertRaises(MI.exceptions.ValidationException):
            MI.tag_resource(resourceArn=arn, tags={'aws:no': 'x'})
        with self.assertRaises(MI.exceptions.ValidationException) as cm:
            MI.tag_resource(resourceArn=arn, tags={'k%d' % i: 'v' for i in range(49)})
        self.assertIn('at most 50 tags', str(cm.exception))
        with self.assertRaises(MI.exceptions.ValidationException):
            MI.tag_resource(resourceArn=arn, tags={'k': 'v' * 257})
        with self.assertRaises(MI.exceptions.ValidationException):
            MI.tag_resource(resourceArn='arn:aws:s3:::bucket', tags={'k': 'v'})
        other_region = arn.replace('us-east-1', 'eu-west-1')
        with self.assertRaises(MI.exceptions.ResourceNotFoundException):
            MI.tag_resource(resourceArn=other_region, tags={'k': 'v'})
        missing = arn[:-32] + ZERO_ID
        with self.assertRaises(MI.exceptions.ResourceNotFoundException):
            MI.tag_resource(resourceArn=missing, tags={'k': 'v'})
        with self.assertRaises(MI.exceptions.ResourceNotFoundException):
            MI.list_tags_for_resource(resourceArn=arn + '/imageset/' + ZERO_ID)
        with self.assertRaises(MI.exceptions.ResourceNotFoundException):
            MI.untag_resource(resourceArn=missing, tagKeys=['b'])
        self.assertEqual(snapshot(), before)
        MI.delete_datastore(datastoreId=ds)


class ImageSetErrors(unittest.TestCase):
    """Image-set operations on ids that do not exist: the right errors, through boto3."""

    @classmethod
    def setUpClass(cls):
        cls.ds = new_datastore('imagesets')

    @classmethod
    def tearDownClass(cls):
        MI.delete_datastore(datastoreId=cls.ds)

    def test_unknown_image_set(self):
        calls = [
            lambda: MI.get_image_set(datastoreId=self.ds, imageSetId=ZERO_ID),
            lambda: MI.get_image_set(datastoreId=self.ds, imageSetId=ZERO_ID, versionId='3'),
            lambda: MI.get_image_set_metadata(datastoreId=self.ds, imageSetId=ZERO_ID),
            lambda: MI.list_image_set_versions(datastoreId=self.ds, imageSetId=ZERO_ID),
            lambda: MI.delete_image_set(datastoreId=self.ds, imageSetId=ZERO_ID),
            lambda: MI.get_image_frame(datastoreId=self.ds, imageSetId=ZERO_ID,
                                       imageFrameInformation={'imageFrameId': ZERO_ID}),
            lambda: MI.update_image_set_metadata(
                datastoreId=self.ds, imageSetId=ZERO_ID, latestVersionId='1',
                updateImageSetMetadataUpdates={'revertToVersionId': '1'}),
            lambda: MI.copy_image_set(
                datastoreId=self.ds, sourceImageSetId=ZERO_ID,
                copyImageSetInformation={'sourceImageSet': {'latestVersionId': '1'}}),
        ]
        for call in calls:
            with self.assertRaises(MI.exceptions.ResourceNotFoundException):
                call()

    def test_search_empty_and_invalid(self):
        r = MI.search_image_sets(datastoreId=self.ds)
        self.assertEqual(r['imageSetsMetadataSummaries'], [])
        r = MI.search_image_sets(datastoreId=self.ds, searchCriteria={
            'filters': [{'values': [{'DICOMPatientId': 'nobody'}], 'operator': 'EQUAL'}],
            'sort': {'sortField': 'updatedAt', 'sortOrder': 'ASC'}})
        self.assertEqual(r['imageSetsMetadataSummaries'], [])
        self.assertEqual(r['sort'], {'sortField': 'updatedAt', 'sortOrder': 'ASC'})
        with self.assertRaises(MI.exceptions.ValidationException) as cm:
            MI.search_image_sets(datastoreId=self.ds, searchCriteria={
                'filters': [{'values': [{'DICOMPatientId': 'a'}], 'operator': 'BETWEEN'}]})
        self.assertIn('BETWEEN takes exactly two values', str(cm.exception))
        with self.assertRaises(MI.exceptions.ValidationException):
            MI.search_image_sets(datastoreId=self.ds, searchCriteria={
                'filters': [{'values': [{'createdAt': 1}, {'updatedAt': 2}],
                             'operator': 'BETWEEN'}]})
        with self.assertRaises(MI.exceptions.ResourceNotFoundException):
            MI.search_image_sets(datastoreId=ZERO_ID)

    def test_update_payload_errors(self):
        base = dict(datastoreId=self.ds, imageSetId=ZERO_ID, latestVersionId='1')
        with self.assertRaises(MI.exceptions.ValidationException):
            MI.update_image_set_metadata(updateImageSetMetadataUpdates={
                'DICOMUpdates': {'updatableAttributes': b'x' * 30001}}, **base)
        with self.assertRaises(MI.exceptions.ValidationException):
            MI.update_image_set_metadata(updateImageSetMetadataUpdates={
                'revertToVersionId': 'v1'}, **base)


class RawRequests(unittest.TestCase):
    """Requests no SDK would send, signed with botocore's signer."""

    def assertError(self, result, status, etype, needle=None):
        s, t, msg = ahltest.error_of(result)
        self.assertEqual((s, t), (status, etype), msg)
        if needle:
            self.assertIn(needle, msg)
        return msg

    def test_malformed_bodies(self):
        before = snapshot()
        ep = SRV.endpoint
        self.assertError(ahltest.raw('POST', ep, '/datastore', body='{"clientToken":'), 400,
                         'ValidationException', 'not valid JSON')
        self.assertError(ahltest.raw('POST', ep, '/datastore', body='[]'), 400,
                         'ValidationException', 'must be a JSON object')
        self.assertError(ahltest.raw('POST', ep, '/datastore', body='{"clientToken": 7}'), 400,
                         'ValidationException',
                         "Value '7' at 'clientToken' failed to satisfy constraint: Member must "
                         "be a string")
        self.assertError(ahltest.raw('POST', ep, '/datastore', body='{}'), 400,
                         'ValidationException',
                         "Value null at 'clientToken' failed to satisfy constraint: Member must "
                         "not be null")
        self.assertError(ahltest.raw('POST', ep, '/datastore',
                                     body='{"clientToken":"t","tags":[]}'), 400,
                         'ValidationException', 'Member must be a map')
        big = '{"clientToken":"t","datastoreName":"' + 'x' * (1 << 20) + '"}'
        self.assertError(ahltest.raw('POST', ep, '/datastore', body=big), 400,
                         'ValidationException', 'larger than the limit')
        self.assertError(ahltest.raw('GET', ep, '/datastore', query='maxResults=abc'), 400,
                         'ValidationException', 'Member must be an integer')
        path = '/datastore/%s/imageSet/%s/updateImageSetMetadata' % (ZERO_ID, ZERO_ID)
        self.assertError(ahltest.raw('POST', ep, path, query='latestVersion=1',
                                     body='{"DICOMUpdates":{"updatableAttributes":"not base64!"}}'),
                         400, 'ValidationException', 'valid base64')
        self.assertError(ahltest.raw('POST', ep, path, query='latestVersion=1&force=maybe',
                                     body='{"revertToVersionId":"1"}'),
                         400, 'ValidationException', 'Member must be a boolean')
        self.assertError(ahltest.raw('GET', ep, '/no/such/operation'), 404,
                         'UnknownOperationException')
        self.assertEqual(snapshot(), before)

    def test_signature_errors(self):
        ep = SRV.endpoint
        before = snapshot()
        self.assertError(ahltest.raw('GET', ep, '/datastore', sign=False), 403,
                         'MissingAuthenticationTokenException')
        self.assertError(ahltest.raw('GET', ep, '/datastore', access_key='AKIAUNKNOWN000000000'),
                         403, 'UnrecognizedClientException')
        self.assertError(ahltest.raw('GET', ep, '/datastore', secret_key='wrong'), 403,
                         'InvalidSignatureException')
        self.assertError(ahltest.raw('GET', ep, '/datastore', timestamp=time.time() - 3600), 403,
                         'InvalidSignatureException', 'expired')
        self.assertError(ahltest.raw('GET', ep, '/datastore', region='eu-west-1'), 403,
                         'InvalidSignatureException')
        # A signed header changed after signing.
        r = ahltest.raw('POST', ep, '/datastore', body='{"clientToken":"sig-test"}',
                        tamper=lambda h: h.__setitem__('Content-Type', 'text/plain'))
        self.assertError(r, 403, 'InvalidSignatureException')
        # The body is covered by the signature too (botocore sends no x-amz-content-sha256).
        r = ahltest.raw('POST', ep, '/datastore', body='{"clientToken":"sig-test"}',
                        tamper=lambda h: h.__setitem__('x-amz-content-sha256', 'ab' * 32))
        self.assertEqual(ahltest.error_of(r)[0], 403)

        def bad_header(h):
            h['Authorization'] = 'AWS4-HMAC-SHA256 Credential=broken'
        self.assertError(ahltest.raw('GET', ep, '/datastore', tamper=bad_header), 400,
                         'IncompleteSignatureException')
        # Every profile of the credentials file may sign.
        other = ahltest.boto3_client(SRV, ahltest.SECOND_ACCESS_KEY, ahltest.SECOND_SECRET_KEY)
        other.list_datastores()
        with self.assertRaises(ClientError) as cm:
            ahltest.boto3_client(SRV, ahltest.ACCESS_KEY, 'bad').list_datastores()
        self.assertEqual(code_of(cm.exception), 'InvalidSignatureException')
        self.assertEqual(snapshot(), before)

    def test_runtime_host_and_request_ids(self):
        r = ahltest.raw('GET', SRV.endpoint, '/datastore',
                        headers={'Host': 'runtime-127.0.0.1:%d' % SRV.port})
        self.assertEqual(r[0], 200)
        self.assertRegex(r[1]['x-amzn-requestid'],
                         '^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$')
        self.assertEqual(r[1]['content-type'], 'application/json')
        self.assertIn('datastoreSummaries', json.loads(r[2]))
        # Empty body and {} are the same for a body-less POST.
        path = '/datastore/%s/imageSet/%s/getImageSet' % (ZERO_ID, ZERO_ID)
        a = ahltest.error_of(ahltest.raw('POST', SRV.endpoint, path))
        b = ahltest.error_of(ahltest.raw('POST', SRV.endpoint, path, body='{}'))
        self.assertEqual(a[:2], b[:2])
        self.assertEqual(a[1], 'ResourceNotFoundException')


class ImportJobs(unittest.TestCase):
    """The API side of import jobs on a server with local buckets (--s3-root): jobs are recorded,
    listed, paged and found again by their clientToken."""

    @classmethod
    def setUpClass(cls):
        cls.srv = ahltest.Server(extra_args=['--s3-root', '/nonexistent-buckets'])
        cls.mi = ahltest.boto3_client(cls.srv)
        cls.ds = cls.mi.create_datastore(datastoreName='jobs')['datastoreId']

    @classmethod
    def tearDownClass(cls):
        rc = cls.srv.stop()
        log = cls.srv.log_text()
        cls.srv.cleanup()
        assert rc == 0, log

    def start(self, token, name='job-1', **kw):
        args = dict(datastoreId=self.ds, jobName=name, clientToken=token,
                    dataAccessRoleArn='arn:aws:iam::123456789012:role/ImportRole',
                    inputS3Uri='s3://bucket/in/', outputS3Uri='s3://bucket/out/')
        args.update(kw)
        return self.mi.start_dicom_import_job(**args)

    def test_start_get_list(self):
        mi = self.mi
        token = str(uuid.uuid4())
        r = self.start(token)
        job = r['jobId']
        self.assertRegex(job, '^[0-9a-z]{1,32}$')
        self.assertEqual((r['datastoreId'], r['jobStatus']), (self.ds, 'SUBMITTED'))
        self.assertLess(abs(time.time() - r['submittedAt'].timestamp()), 60)
        self.assertEqual(self.start(token)['jobId'], job)
        with self.assertRaises(mi.exceptions.ConflictException):
            self.start(token, name='another-name')

        p = mi.get_dicom_import_job(datastoreId=self.ds, jobId=job)['jobProperties']
        self.assertEqual(p['jobName'], 'job-1')
        self.assertEqual(p['inputS3Uri'], 's3://bucket/in/')
        self.assertEqual(p['outputS3Uri'],
                         's3://bucket/out/%s-DicomImport-%s/' % (self.ds, job))
        self.assertEqual(p['dataAccessRoleArn'], 'arn:aws:iam::123456789012:role/ImportRole')

        more = [self.start(str(uuid.uuid4()), name='job-%d' % i)['jobId'] for i in range(3)]
        seen = []
        for page in mi.get_paginator('list_dicom_import_jobs').paginate(
                datastoreId=self.ds, PaginationConfig={'PageSize': 2}):
            self.assertLessEqual(len(page['jobSummaries']), 2)
            seen += [j['jobId'] for j in page['jobSummaries']]
        self.assertEqual(sorted(seen), sorted([job] + more))
        listed = mi.list_dicom_import_jobs(datastoreId=self.ds, jobStatus='COMPLETED')
        self.assertTrue(all(j['jobStatus'] == 'COMPLETED' for j in listed['jobSummaries']))

        with self.assertRaises(mi.exceptions.ResourceNotFoundException):
            mi.get_dicom_import_job(datastoreId=self.ds, jobId='0' * 32)
        with self.assertRaises(mi.exceptions.ResourceNotFoundException):
            self.start(str(uuid.uuid4()), datastoreId=ZERO_ID)
        with self.assertRaises(mi.exceptions.ValidationException):
            self.start(str(uuid.uuid4()), inputS3Uri='s3://Bad_Bucket/in/')
        with self.assertRaises(mi.exceptions.ValidationException):
            self.start(str(uuid.uuid4()), inputOwnerAccountId='12345678901x')
        with self.assertRaises(mi.exceptions.ResourceNotFoundException):
            mi.list_dicom_import_jobs(datastoreId=ZERO_ID)


class Presigned(unittest.TestCase):
    def test_presigned_get(self):
        import urllib.request
        url = MI.generate_presigned_url('list_datastores', Params={'maxResults': 5},
                                        ExpiresIn=120)
        self.assertIn('X-Amz-Signature=', url)
        with urllib.request.urlopen(url, timeout=30) as r:
            self.assertEqual(r.status, 200)
            self.assertIn('datastoreSummaries', json.loads(r.read()))
        bad = url.replace('X-Amz-Signature=', 'X-Amz-Signature=0')[:len(url)]
        s, t, _ = ahltest.error_of(ahltest.raw('GET', SRV.endpoint, bad[len(SRV.endpoint):]
                                               .split('?')[0],
                                               query=bad.split('?', 1)[1], sign=False))
        self.assertEqual((s, t), (403, 'InvalidSignatureException'))


if __name__ == '__main__':
    unittest.main(verbosity=2)
