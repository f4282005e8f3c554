#!/usr/bin/env python3
"""Writes the seed corpus of tests/fuzz/fuzz_api_codec.c: real requests of every HealthImaging
operation as botocore serialises them (signed, nothing sent), in the fuzz target's text form

    METHOD\\n raw-path\\n raw-query\\n name: value\\n ... \\n body

plus a few hand-made edge cases the SDK would refuse to send (parameter validation off, raw
encodings). Run it with the Python that has boto3 (python3 on PATH); it replaces the seeds it
made before and keeps regress_* files (inputs the fuzzer found, kept as regression seeds):

    python3 tools/gen_api_codec_corpus.py tests/fuzz/corpus/api_codec
"""
import base64
import json
import os
import sys
import urllib.parse

import boto3
from botocore.config import Config

DS = '0123456789abcdef0123456789abcdef'
IS = 'fedcba9876543210fedcba9876543210'
ARN_DS = 'arn:aws:medical-imaging:us-east-1:123456789012:datastore/' + DS
ARN_IS = ARN_DS + '/imageset/' + IS
UPD = base64.b64encode(json.dumps({'SchemaVersion': 1.1, 'Patient': {'DICOM': {
    'PatientName': 'Doe^Jane'}}}).encode()).decode()
REM = base64.b64encode(json.dumps({'SchemaVersion': 1.1, 'Study': {'Series': {
    '1.2.3': {'Instances': {'1.2.3.4': {}}}}}}).encode()).decode()

CALLS = [
    ('create_datastore', {'datastoreName': 'bench', 'clientToken': 'tok-1',
                          'tags': {'team': 'imaging'}}),
    ('create_datastore', {'clientToken': 'tok-2', 'losslessStorageFormat': 'JPEG_2000_LOSSLESS',
                          'kmsKeyArn': 'arn:aws:kms:us-east-1:123456789012:key/abc'}),
    ('get_datastore', {'datastoreId': DS}),
    ('list_datastores', {}),
    ('list_datastores', {'datastoreStatus': 'ACTIVE', 'maxResults': 5, 'nextToken': 'a+b/c='}),
    ('delete_datastore', {'datastoreId': DS}),
    ('start_dicom_import_job', {'jobName': 'job1', 'dataAccessRoleArn':
                                'arn:aws:iam::123456789012:role/Import', 'clientToken': 'c1',
                                'datastoreId': DS, 'inputS3Uri': 's3://in/prefix/',
                                'outputS3Uri': 's3://out/prefix/',
                                'inputOwnerAccountId': '123456789012'}),
    ('get_dicom_import_job', {'datastoreId': DS, 'jobId': 'abcdef0123456789abcdef0123456789'}),
    ('list_dicom_import_jobs', {'datastoreId': DS, 'jobStatus': 'COMPLETED', 'maxResults': 50,
                                'nextToken': 'x'}),
    ('search_image_sets', {'datastoreId': DS, 'maxResults': 10, 'searchCriteria': {
        'filters': [{'values': [{'DICOMPatientId': 'PAT1'}], 'operator': 'EQUAL'}],
        'sort': {'sortOrder': 'ASC', 'sortField': 'updatedAt'}}}),
    ('search_image_sets', {'datastoreId': DS, 'searchCriteria': {'filters': [
        {'values': [{'DICOMStudyDateAndTime': {'DICOMStudyDate': '20200101',
                                               'DICOMStudyTime': '000000'}},
                    {'DICOMStudyDateAndTime': {'DICOMStudyDate': '20261231'}}],
         'operator': 'BETWEEN'},
        {'values': [{'updatedAt': 1700000000.5}, {'updatedAt': 1800000000}],
         'operator': 'BETWEEN'},
        {'values': [{'DICOMStudyInstanceUID': '1.2.840.1'}], 'operator': 'EQUAL'},
        {'values': [{'DICOMSeriesInstanceUID': '1.2.840.1.2'}], 'operator': 'EQUAL'},
        {'values': [{'isPrimary': True}], 'operator': 'EQUAL'}]}}),
    ('search_image_sets', {'datastoreId': DS}),
    ('get_image_set', {'datastoreId': DS, 'imageSetId': IS, 'versionId': '3'}),
    ('get_image_set_metadata', {'datastoreId': DS, 'imageSetId': IS}),
    ('get_image_set_metadata', {'datastoreId': DS, 'imageSetId': IS, 'versionId': '1'}),
    ('get_image_frame', {'datastoreId': DS, 'imageSetId': IS, 'imageFrameInformation': {
        'imageFrameId': 'abcdef0123456789abcdef0123456789'}}),
    ('list_image_set_versions', {'datastoreId': DS, 'imageSetId': IS, 'maxResults': 3,
                                 'nextToken': 'n'}),
    ('update_image_set_metadata', {'datastoreId': DS, 'imageSetId': IS, 'latestVersionId': '1',
                                   'updateImageSetMetadataUpdates': {'DICOMUpdates': {
                                       'updatableAttributes': base64.b64decode(UPD)}}}),
    ('update_image_set_metadata', {'datastoreId': DS, 'imageSetId': IS, 'latestVersionId': '7',
                                   'force': True,
                                   'updateImageSetMetadataUpdates': {'DICOMUpdates': {
                                       'removableAttributes': base64.b64decode(REM)}}}),
    ('update_image_set_metadata', {'datastoreId': DS, 'imageSetId': IS, 'latestVersionId': '9',
                                   'updateImageSetMetadataUpdates': {'revertToVersionId': '2'}}),
    ('copy_image_set', {'datastoreId': DS, 'sourceImageSetId': IS, 'force': False,
                        'promoteToPrimary': True, 'copyImageSetInformation': {
                            'sourceImageSet': {'latestVersionId': '1', 'DICOMCopies': {
                                'copiableAttributes': '{"SchemaVersion":"1.1"}'}},
                            'destinationImageSet': {'imageSetId': IS[::-1],
                                                    'latestVersionId': '2'}}}),
    ('delete_image_set', {'datastoreId': DS, 'imageSetId': IS}),
    ('list_tags_for_resource', {'resourceArn': ARN_DS}),
    ('tag_resource', {'resourceArn': ARN_IS, 'tags': {'k': 'v', 'a:b/c': 'd e'}}),
    ('untag_resource', {'resourceArn': ARN_DS, 'tagKeys': ['k', 'a:b/c']}),
    # What a client without validation would send.
    ('get_datastore', {'datastoreId': 'NOT-AN-ID'}),
    ('list_datastores', {'maxResults': 51}),
    ('update_image_set_metadata', {'datastoreId': DS, 'imageSetId': IS, 'latestVersionId': '',
                                   'updateImageSetMetadataUpdates': {}}),
    ('tag_resource', {'resourceArn': 'arn:aws:s3:::bucket', 'tags': {'aws:x': 'é' * 300}}),
]

# Requests no SDK sends: raw encodings and shapes the fuzzer should start near.
RAW = [
    ('GET', '/datastore/%zz', '', ''),
    ('GET', '/datastore', 'maxResults=ten&maxResults=2&datastoreStatus=active', ''),
    ('GET', '/datastore', 'nextToken=%E9%80&x=%', ''),
    ('DELETE', '/tags/arn%3Aaws%3Amedical-imaging%3Aus-east-1%3A123456789012%3Adatastore%2F' + DS,
     'tagKeys=a&tagKeys=b%2Fc&tagKeys=', ''),
    ('POST', '/datastore/' + DS + '/imageSet/' + IS + '/updateImageSetMetadata',
     'latestVersion=1&force=yes', '{"DICOMUpdates":{"updatableAttributes":"e30"}}'),
    ('POST', '/datastore', '', '{"clientToken":"a","clientToken":"b"}'),
    ('POST', '/datastore', '', '[' * 64),
    ('PUT', '/datastore/\xc3', '', ''),
]


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), '..', 'tests', 'fuzz', 'corpus', 'api_codec')
    os.makedirs(out, exist_ok=True)
    for f in os.listdir(out):  # regress_* seeds are inputs the fuzzer found; they stay
        if not f.startswith('regress_'):
            os.unlink(os.path.join(out, f))
    client = boto3.client('medical-imaging', endpoint_url='http://127.0.0.1:9', region_name=
                          'us-east-1', aws_access_key_id='AKIAAHILITECORPUS001',
                          aws_secret_access_key='corpus/secret',
                          config=Config(inject_host_prefix=False, parameter_validation=False,
                                        retries={'max_attempts': 1}))
    captured = []

    class Captured(Exception):
        pass

    def before_send(request, **_):
        captured.append(request)
        raise Captured()

    client.meta.events.register('before-send.medical-imaging', before_send)
    n = 0
    for name, params in CALLS:
        try:
            getattr(client, name)(**params)
        except Captured:
            pass
        r = captured.pop()
        u = urllib.parse.urlsplit(r.url)
        body = r.body or b''
        if isinstance(body, str):
            body = body.encode()
        head = '%s\n%s\n%s\n' % (r.method, u.path, u.query)
        for k, v in r.headers.items():
            if isinstance(v, bytes):
                v = v.decode()
            head += '%s: %s\n' % (k, v)
        n += 1
        with open(os.path.join(out, '%02d_%s' % (n, name)), 'wb') as f:
            f.write(head.encode() + b'\n' + body)
    for method, path, query, body in RAW:
        n += 1
        with open(os.path.join(out, '%02d_raw' % n), 'wb') as f:
            f.write(('%s\n%s\n%s\ncontent-type: application/json\n\n%s' %
                     (method, path, query, body)).encode('utf-8', 'surrogateescape'))
    print('%d seeds in %s' % (n, out))


if __name__ == '__main__':
    main()
