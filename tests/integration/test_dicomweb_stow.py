"""STOW-RS end to end: StoreDICOM (POST /datastore/{id}/studies) and StoreDICOMStudy (POST
/datastore/{id}/studies/{study}).

Bodies are sent as AWS documents them, with curl --aws-sigv4 and `--data-binary @file` (plain,
and with the documentation's x-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-PAYLOAD header on a
raw body); as multipart/related bodies signed by botocore's SigV4Auth (the body's hash in the
signature, or in x-amz-content-sha256); and aws-chunked, signed chunk by chunk by the signer
below, written from the S3 SigV4 streaming specification (botocore has none for this service).
Stored instances are read back through GetImageSetMetadata and DICOMweb (metadata, and frames
compared byte for byte with the source's pixel data) and DICOMweb search; the grouping into primary and non-primary
image sets is compared with an import job of the same files. Bad parts (not DICOM, truncated,
another study, not application/dicom) fail alone with PS3.18 reasons; a tampered chunk or body
is 403 and stores nothing; a truncated or mis-sized chunked stream is 400; wrong content types
415; a body over 1 GB 413 before it is read; an upload cut off leaves no spool file; and a
300 MB body goes through without the server's memory growing with it (peak RSS measured).
"""
import gzip
import hashlib
import hmac
import http.client
import json
import os
import socket
import subprocess
import sys
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ahltest  # noqa: E402
from test_dicomweb_wado import frame_hash  # noqa: E402
from ahltest import parts_of  # noqa: E402

SAMPLES = '/usr/lib/python3/dist-packages/pydicom/data/test_files'
CT = os.path.join(SAMPLES, 'CT_small.dcm')
MR = os.path.join(SAMPLES, 'MR_small.dcm')
RLE = os.path.join(SAMPLES, 'SC_rgb_rle_2frame.dcm')
SRV = None
MI = None
FILES = {}  # name -> path of the generated inputs

# System Python (pydicom): argv[1] the output directory. Writes ct_conflict.dcm (the CT with
# another PatientID and SOPInstanceUID: same study and series, inconsistent) and
# ct_other_study.dcm (the CT moved to another study); ct_second.dcm (another instance of the CT's
# series, consistent with it); ct_unique.dcm (pixels no other input has, stored by no test).
_MAKE = r'''
import sys, os
import pydicom
src = '/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm'
ds = pydicom.dcmread(src)
ds.PatientID = 'STOW-CONFLICT'
ds.SOPInstanceUID = ds.SOPInstanceUID + '.7'
ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
ds.save_as(os.path.join(sys.argv[1], 'ct_conflict.dcm'))
ds = pydicom.dcmread(src)
ds.SOPInstanceUID = ds.SOPInstanceUID + '.8'
ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
ds.save_as(os.path.join(sys.argv[1], 'ct_second.dcm'))
ds = pydicom.dcmread(src)
ds.StudyInstanceUID = '1.2.826.0.1.3680043.8.498.777'
ds.SeriesInstanceUID = '1.2.826.0.1.3680043.8.498.777.1'
ds.SOPInstanceUID = '1.2.826.0.1.3680043.8.498.777.1.1'
ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
ds.save_as(os.path.join(sys.argv[1], 'ct_other_study.dcm'))
ds = pydicom.dcmread(src)
ds.SOPInstanceUID = ds.SOPInstanceUID + '.9'
ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
ds.PixelData = bytes(reversed(ds.PixelData))
ds.save_as(os.path.join(sys.argv[1], 'ct_unique.dcm'))
print(pydicom.dcmread(src).StudyInstanceUID)
'''


def setUpModule():
    global SRV, MI
    SRV = ahltest.Server()
    MI = ahltest.boto3_client(SRV)
    out = os.path.join(SRV.tmp, 'inputs')
    os.makedirs(out)
    p = subprocess.run(['/usr/bin/python3', '-c', _MAKE, out], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    FILES['ct_study'] = p.stdout.strip()
    for name in ('ct_conflict.dcm', 'ct_other_study.dcm', 'ct_second.dcm', 'ct_unique.dcm'):
        FILES[name] = os.path.join(out, name)
    with open(CT, 'rb') as f:
        ct = f.read()
    FILES['truncated'] = os.path.join(out, 'truncated.dcm')
    with open(FILES['truncated'], 'wb') as f:
        f.write(ct[:len(ct) // 2])


def tearDownModule():
    SRV.finish()


def read(path):
    with open(path, 'rb') as f:
        return f.read()


def multipart(parts, boundary='ahilite-stow-boundary'):
    """A multipart/related body of [(content type, bytes)] and its Content-Type."""
    body = b''.join(b'--%s\r\nContent-Type: %s\r\n\r\n%s\r\n' % (boundary.encode(), t.encode(), d)
                    for t, d in parts) + b'--%s--\r\n' % boundary.encode()
    return body, 'multipart/related; type="application/dicom"; boundary=%s' % boundary


def new_datastore(name):
    return ahltest.create_active_datastore(MI, name)


def store(ds, body, content_type, study=None, headers=None, tamper=None):
    path = '/datastore/%s/studies%s' % (ds, '/' + study if study else '')
    h = {'Content-Type': content_type, 'Accept': 'application/dicom+json'}
    h.update(headers or {})
    return ahltest.raw('POST', SRV.endpoint, path, body=body, headers=h, tamper=tamper)


def image_sets(ds):
    """{image set id: (study, series, sorted SOP UIDs, isPrimary)} of every set of ds."""
    out = {}
    r = MI.search_image_sets(datastoreId=ds, searchCriteria={})
    for s in r['imageSetsMetadataSummaries']:
        meta = json.loads(gzip.decompress(MI.get_image_set_metadata(
            datastoreId=ds, imageSetId=s['imageSetId'])['imageSetMetadataBlob'].read()))
        study = meta['Study']['DICOM']['StudyInstanceUID']
        for series, v in meta['Study']['Series'].items():
            out[s['imageSetId']] = (study, series, sorted(v['Instances']), s['isPrimary'])
    return out


def seq(resp, tag):
    return resp.get(tag, {}).get('Value', [])


def val(item, tag):
    return item[tag]['Value'][0]


def frame_files():
    n = 0
    for _, _, files in os.walk(os.path.join(SRV.data_dir, 'frames')):
        n += len(files)
    return n


def spool_entries():
    tmp = os.path.join(SRV.data_dir, 'tmp')
    return [n for n in os.listdir(tmp) if n.startswith('stow-')]


# ---- the streaming signer (S3 SigV4 streaming specification) ---------------------------------

def _hmac(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


class StreamingSigner:
    """Signs a request as STREAMING-AWS4-HMAC-SHA256-PAYLOAD (the seed signature over the
    headers), then each chunk chained from the previous signature."""

    def __init__(self, path, content_type, decoded_length):
        amz_date = time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())
        self.amz_date, self.path = amz_date, path
        self.scope = '%s/%s/medical-imaging/aws4_request' % (amz_date[:8], ahltest.REGION)
        self.headers = {
            'content-encoding': 'aws-chunked',
            'content-type': content_type,
            'host': urllib.parse.urlparse(SRV.endpoint).netloc,
            'x-amz-content-sha256': 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD',
            'x-amz-date': amz_date,
            'x-amz-decoded-content-length': str(decoded_length),
        }
        names = sorted(self.headers)
        canonical = '\n'.join([
            'POST', urllib.parse.quote(urllib.parse.quote(path, safe='/'), safe='/'), '',
            ''.join('%s:%s\n' % (n, self.headers[n]) for n in names), ';'.join(names),
            'STREAMING-AWS4-HMAC-SHA256-PAYLOAD'])
        to_sign = '\n'.join(['AWS4-HMAC-SHA256', amz_date, self.scope,
                             hashlib.sha256(canonical.encode()).hexdigest()])
        key = _hmac(('AWS4' + ahltest.SECRET_KEY).encode(), amz_date[:8])
        for part in (ahltest.REGION, 'medical-imaging', 'aws4_request'):
            key = _hmac(key, part)
        self.key = key
        self.prev = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        self.headers['authorization'] = (
            'AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s' %
            (ahltest.ACCESS_KEY, self.scope, ';'.join(names), self.prev))

    def chunk(self, data, tamper=False):
        """The framed chunk of data (b'' for the final one), signed after the previous one."""
        sts = '\n'.join(['AWS4-HMAC-SHA256-PAYLOAD', self.amz_date, self.scope, self.prev,
                         hashlib.sha256(b'').hexdigest(), hashlib.sha256(data).hexdigest()])
        self.prev = hmac.new(self.key, sts.encode(), hashlib.sha256).hexdigest()
        if tamper:
            data = bytes([data[0] ^ 1]) + data[1:]
        return b'%x;chunk-signature=%s\r\n%s\r\n' % (len(data), self.prev.encode(), data)

    @staticmethod
    def framed_length(sizes):
        return sum(len(b'%x' % n) + len(';chunk-signature=') + 64 + 4 + n for n in sizes)


def chunked_request(ds, payload, content_type, chunk=65536, tamper_chunk=None, drop_final=False,
                    declared=None, study=None):
    """payload signed and framed as aws-chunked: (path, headers, body)."""
    path = '/datastore/%s/studies%s' % (ds, '/' + study if study else '')
    signer = StreamingSigner(path, content_type,
                             len(payload) if declared is None else declared)
    chunks = [payload[i:i + chunk] for i in range(0, len(payload), chunk)]
    body = b''.join(signer.chunk(c, tamper=n == tamper_chunk) for n, c in enumerate(chunks))
    if not drop_final:
        body += signer.chunk(b'')
    return path, signer.headers, body


def send(path, headers, body, method='POST'):
    c = http.client.HTTPConnection(urllib.parse.urlparse(SRV.endpoint).netloc, timeout=300)
    h = dict(headers)
    h.pop('host', None)
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    out = r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    c.close()
    return out


class StoreDICOM(unittest.TestCase):
    def test_1_curl_application_dicom(self):
        """The AWS documentation's example: curl --aws-sigv4 with --data-binary @file."""
        ds = new_datastore('stow-curl')
        url = '%s/datastore/%s/studies' % (SRV.endpoint, ds)
        base = ['curl', '-sS', '--aws-sigv4', 'aws:amz:%s:medical-imaging' % ahltest.REGION,
                '--user', '%s:%s' % (ahltest.ACCESS_KEY, ahltest.SECRET_KEY),
                '-H', 'Content-Type: application/dicom', '-H', 'Accept: application/dicom+json',
                '-w', '\n%{http_code}']
        p = subprocess.run(base + ['--data-binary', '@' + CT, url], capture_output=True,
                           timeout=60)
        body, code = p.stdout.rsplit(b'\n', 1)
        self.assertEqual(code, b'200', body)
        resp = json.loads(body)
        [item] = seq(resp, '00081199')
        self.assertEqual(val(item, '00081150'), '1.2.840.10008.5.1.4.1.1.2')
        self.assertEqual(val(resp, '00081190'),
                         '%s/datastore/%s/studies/%s' % (SRV.endpoint, ds, FILES['ct_study']))
        set_id = val(item, '00091002')
        self.assertEqual(val(item, '00090010'), 'AHILITE STOW')
        self.assertEqual(val(item, '00091004'), 'PRIMARY')
        self.assertTrue(val(item, '00081190').endswith('?imageSetId=' + set_id))
        sets = image_sets(ds)
        self.assertEqual(list(sets), [set_id])
        self.assertEqual(sets[set_id][2], [val(item, '00081155')])

        # Visible through DICOMweb, and the frame is the file's pixel data, byte for byte.
        rel = urllib.parse.urlparse(val(item, '00081190'))
        st, h, b = ahltest.raw('GET', SRV.endpoint, rel.path + '/metadata')
        self.assertEqual(st, 200, b)
        self.assertEqual(json.loads(b)[0]['00080018']['Value'], [val(item, '00081155')])
        st, h, b = ahltest.raw('GET', SRV.endpoint, rel.path + '/frames/1')
        self.assertEqual(st, 200, b)
        [(_, frame)] = parts_of(h, b)
        self.assertEqual(hashlib.sha256(frame).hexdigest(), frame_hash(CT, 0))
        # And found by DICOMweb search (QIDO-RS) at once.
        st, h, b = ahltest.raw('GET', SRV.endpoint, '/datastore/%s/studies' % ds,
                               'StudyInstanceUID=' + FILES['ct_study'])
        self.assertEqual(st, 200, b)
        self.assertEqual([s['0020000D']['Value'][0] for s in json.loads(b)], [FILES['ct_study']])

        # The documentation's header for a raw body: STREAMING-... with the decoded length.
        p = subprocess.run(base + ['-H', 'x-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-PAYLOAD',
                                   '-H', 'x-amz-decoded-content-length: %d' % len(read(MR)),
                                   '--data-binary', '@' + MR, url],
                           capture_output=True, timeout=60)
        body, code = p.stdout.rsplit(b'\n', 1)
        self.assertEqual(code, b'200', body)
        self.assertEqual(len(image_sets(ds)), 2)
        self.assertEqual(spool_entries(), [])

    def test_2_multipart_botocore_and_bad_parts(self):
        ds = new_datastore('stow-multipart')
        parts = [('application/dicom', read(CT)), ('application/dicom', b'not DICOM at all'),
                 ('application/dicom', read(MR)), ('application/dicom', read(FILES['truncated'])),
                 ('application/dicom; transfer-syntax=*', read(RLE)),
                 ('application/octet-stream', read(CT))]
        body, ctype = multipart(parts)
        st, h, b = store(ds, body, ctype)
        self.assertEqual(st, 202, b)
        self.assertEqual(h['content-type'], 'application/dicom+json')
        resp = json.loads(b)
        ok, failed = seq(resp, '00081199'), seq(resp, '00081198')
        self.assertEqual(sorted(val(i, '00091001') for i in ok), [1, 3, 5])
        self.assertNotIn('00081190', resp)  # instances of several studies
        reasons = {val(i, '00091001'): (val(i, '00081197'), val(i, '00091005')) for i in failed}
        self.assertEqual(sorted(reasons), [2, 4, 6])
        self.assertEqual(reasons[2][0], 0xC000)
        self.assertEqual(reasons[4][0], 0xC000)
        self.assertIn('truncated', reasons[4][1])
        self.assertEqual(reasons[6][0], 0xC000)
        self.assertIn('application/octet-stream', reasons[6][1])
        sets = image_sets(ds)
        self.assertEqual(sorted(s for v in sets.values() for s in v[2]),
                         sorted(val(i, '00081155') for i in ok))
        # The RLE instance's two frames were transcoded and can be read back.
        rle = [i for i in ok if val(i, '00091001') == 5][0]
        rel = urllib.parse.urlparse(val(rle, '00081190'))
        st, h, b = ahltest.raw('GET', SRV.endpoint, rel.path + '/frames/1,2',
                               headers={'Accept': 'multipart/related; type="application/'
                                                  'octet-stream"; transfer-syntax=*'})
        self.assertEqual(st, 200, b)
        self.assertEqual(len(parts_of(h, b)), 2)

        # All parts failing is 409; nothing stored.
        body, ctype = multipart([('application/dicom', b'junk')])
        st, h, b = store(ds, body, ctype)
        self.assertEqual(st, 409, b)
        self.assertEqual(len(image_sets(ds)), len(sets))

    def test_3_payload_hash_header_and_tampering(self):
        ds = new_datastore('stow-hash')
        body, ctype = multipart([('application/dicom', read(CT))])
        digest = hashlib.sha256(body).hexdigest()
        st, _, b = store(ds, body, ctype, headers={'x-amz-content-sha256': digest})
        self.assertEqual(st, 200, b)

        # The body changed after signing (botocore's hash, and x-amz-content-sha256): 403.
        other = read(MR)
        for extra in ({}, {'x-amz-content-sha256': hashlib.sha256(other).hexdigest()}):
            path = '/datastore/%s/studies' % ds
            from botocore.auth import SigV4Auth
            from botocore.awsrequest import AWSRequest
            from botocore.credentials import Credentials
            h = {'Content-Type': 'application/dicom'}
            h.update(extra)
            req = AWSRequest(method='POST', url=SRV.endpoint + path, data=other, headers=h)
            SigV4Auth(Credentials(ahltest.ACCESS_KEY, ahltest.SECRET_KEY), 'medical-imaging',
                      ahltest.REGION).add_auth(req)
            tampered = bytes([other[0] ^ 1]) + other[1:]
            st, _, b = send(path, dict(req.headers.items()), tampered)
            self.assertEqual(st, 403, b)
        self.assertEqual(len(image_sets(ds)), 1)
        self.assertEqual(spool_entries(), [])

    def test_4_streaming_chunks(self):
        ds = new_datastore('stow-chunked')
        payload, ctype = multipart([('application/dicom', read(CT)),
                                    ('application/dicom', read(RLE))])
        # Tampered chunk, truncated stream, wrong decoded length: refused, nothing stored (not
        # an image set, not a frame file).
        frames_before = frame_files()
        unique, _ = multipart([('application/dicom', read(FILES['ct_unique.dcm']))])
        for kw, status in (({'tamper_chunk': 1}, 403), ({'drop_final': True}, 400),
                           ({'declared': len(unique) + 1}, 400),
                           ({'declared': len(unique) - 1}, 400)):
            st, _, b = send(*chunked_request(ds, unique, ctype, chunk=4096, **kw))
            self.assertEqual(st, status, (kw, b))
            self.assertEqual(image_sets(ds), {})
            self.assertEqual(frame_files(), frames_before)
        st, _, b = send(*chunked_request(ds, payload, ctype, chunk=4096))
        self.assertEqual(st, 200, b)
        self.assertEqual(len(seq(json.loads(b), '00081199')), 2)
        # The same as HTTP/1.1 chunked transfer coding (no Content-Length): a generator body.
        path, headers, body = chunked_request(ds, payload, ctype, chunk=4096)
        st, _, b = send(path, headers, (body[i:i + 1000] for i in range(0, len(body), 1000)))
        self.assertEqual(st, 200, b)
        # aws-chunked without the streaming payload hash is refused.
        _, _, body = chunked_request(ds, payload, ctype)
        st, _, b = store(ds, body, ctype, headers={'Content-Encoding': 'aws-chunked'})
        self.assertEqual(st, 400, b)
        self.assertEqual(spool_entries(), [])

    def test_5_store_dicom_study(self):
        ds = new_datastore('stow-study')
        body, ctype = multipart([('application/dicom', read(CT)),
                                 ('application/dicom', read(FILES['ct_other_study.dcm']))])
        st, _, b = store(ds, body, ctype, study=FILES['ct_study'])
        self.assertEqual(st, 202, b)
        resp = json.loads(b)
        self.assertTrue(val(resp, '00081190').endswith('/studies/' + FILES['ct_study']))
        [ok], [bad] = seq(resp, '00081199'), seq(resp, '00081198')
        self.assertEqual(val(ok, '00091001'), 1)
        self.assertEqual(val(bad, '00081197'), 0xA900)
        self.assertEqual(val(bad, '00081155'), '1.2.826.0.1.3680043.8.498.777.1.1')
        self.assertIn('not to study', val(bad, '00091005'))
        self.assertEqual([v[0] for v in image_sets(ds).values()], [FILES['ct_study']])
        # The same with the streaming signer.
        payload, ctype = multipart([('application/dicom', read(FILES['ct_other_study.dcm']))])
        st, _, b = send(*chunked_request(ds, payload, ctype, study=FILES['ct_study']))
        self.assertEqual(st, 409, b)

    def test_6_grouping_equals_an_import_job(self):
        names = [CT, MR, RLE, FILES['ct_conflict.dcm'], FILES['ct_other_study.dcm']]
        stow_ds = new_datastore('stow-grouping')
        body, ctype = multipart([('application/dicom', read(n)) for n in names])
        st, _, b = store(stow_ds, body, ctype)
        self.assertEqual(st, 200, b)
        by_part = {val(i, '00091001'): val(i, '00091004') for i in seq(json.loads(b), '00081199')}
        self.assertEqual(by_part[4], 'NON_PRIMARY')

        job_ds = new_datastore('job-grouping')
        bucket = os.path.join(SRV.data_dir, 'buckets', 'in-bucket', 'stow')
        os.makedirs(bucket)
        os.makedirs(os.path.join(SRV.data_dir, 'buckets', 'out-bucket'), exist_ok=True)
        for i, n in enumerate(names):
            with open(os.path.join(bucket, '%d.dcm' % i), 'wb') as f:
                f.write(read(n))
        r = MI.start_dicom_import_job(
            jobName='grouping', datastoreId=job_ds, clientToken='stow-grouping',
            dataAccessRoleArn='arn:aws:iam::123456789012:role/ImportRole',
            inputS3Uri='s3://in-bucket/stow/', outputS3Uri='s3://out-bucket/out/')
        props = ahltest.wait_import_job(MI, job_ds, r['jobId'], 120)
        self.assertEqual(props['jobStatus'], 'COMPLETED', props.get('message'))
        self.assertEqual(sorted(image_sets(stow_ds).values()),
                         sorted(image_sets(job_ds).values()))

    def test_7_concurrent_requests_make_one_primary_set(self):
        import threading
        ds = new_datastore('stow-concurrent')
        results = []

        def one(path):
            body, ctype = multipart([('application/dicom', read(path))])
            results.append(store(ds, body, ctype)[0])
        threads = [threading.Thread(target=one, args=(p,))
                   for p in (CT, FILES['ct_second.dcm']) * 3]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(results, [200] * 6)
        sets = list(image_sets(ds).values())
        self.assertEqual(len(sets), 1, sets)
        self.assertEqual(len(sets[0][2]), 2)
        self.assertTrue(sets[0][3])


class Limits(unittest.TestCase):
    def test_1_content_types(self):
        ds = new_datastore('stow-types')
        for ctype in ('application/json', 'multipart/related; type="application/dicom+json"; '
                      'boundary=x', None):
            st, h, b = store(ds, b'{}', ctype or '')
            self.assertEqual(st, 415, (ctype, b))
            self.assertEqual(json.loads(b)['__type'], 'UnsupportedMediaTypeException')
        st, h, b = store(ds, b'--x\r\n\r\n', 'multipart/related; type="application/dicom"')
        self.assertEqual(st, 400, b)  # no boundary
        st, h, b = store(ds, b'x', 'multipart/related; boundary=b')
        self.assertEqual(st, 400, b)  # no parts
        st, h, b = store('0' * 32, read(CT), 'application/dicom')
        self.assertEqual(st, 404, b)
        st, h, b = ahltest.raw('POST', SRV.endpoint, '/datastore/%s/studies' % ds,
                               body=read(CT), headers={'Content-Type': 'application/dicom'},
                               sign=False)
        self.assertEqual(st, 403, b)
        self.assertEqual(spool_entries(), [])

    def raw_socket(self, ds, length, send_bytes, srv=None):
        """Sends signed headers (UNSIGNED-PAYLOAD) for a body of length bytes, then send_bytes
        of it; returns the socket."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials
        path = '/datastore/%s/studies' % ds
        h = {'Content-Type': 'application/dicom', 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD'}
        srv = srv or SRV
        req = AWSRequest(method='POST', url=srv.endpoint + path, data=b'', headers=h)
        SigV4Auth(Credentials(ahltest.ACCESS_KEY, ahltest.SECRET_KEY), 'medical-imaging',
                  ahltest.REGION).add_auth(req)
        s = socket.create_connection(('127.0.0.1', srv.port))
        head = 'POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Length: %d\r\n' % (
            path, srv.port, length)
        for k, v in req.headers.items():
            if k.lower() not in ('content-length', 'host'):
                head += '%s: %s\r\n' % (k, v)
        s.sendall(head.encode() + b'\r\n' + b'\0' * send_bytes)
        return s

    def test_2_over_one_gigabyte(self):
        ds = new_datastore('stow-big')
        s = self.raw_socket(ds, (1 << 30) + 1, 0)
        s.settimeout(10)
        reply = s.recv(4096)
        s.close()
        self.assertTrue(reply.startswith(b'HTTP/1.1 413'), reply[:200])
        self.assertIn(b'1073741824', reply)

    def test_3_aborted_upload_leaves_nothing(self):
        ds = new_datastore('stow-abort')
        s = self.raw_socket(ds, 50 << 20, 2 << 20)
        deadline = time.time() + 10
        while not spool_entries() and time.time() < deadline:
            time.sleep(0.05)
        self.assertNotEqual(spool_entries(), [])  # it was being spooled
        s.close()
        deadline = time.time() + 10
        while spool_entries() and time.time() < deadline:
            time.sleep(0.05)
        self.assertEqual(spool_entries(), [])
        self.assertEqual(image_sets(ds), {})

    def test_6_spool_budget(self):
        """--max-stow-spool 1: a 2 MiB body is 429 before it is read, a small one passes."""
        srv = ahltest.Server(extra_args=['--max-stow-spool', '1'])
        try:
            ds = ahltest.create_active_datastore(ahltest.boto3_client(srv), 'stow-budget')
            path = '/datastore/%s/studies' % ds
            # Only the headers are sent: the answer comes before the body is read.
            sock = self.raw_socket(ds, 2 << 20, 0, srv=srv)
            sock.settimeout(10)
            reply = sock.recv(4096)
            sock.close()
            self.assertTrue(reply.startswith(b'HTTP/1.1 429'), reply[:200])
            self.assertIn(b'x-amzn-ErrorType: ThrottlingException', reply)
            small, ctype = multipart([('application/dicom', read(CT))])
            st, h, b = ahltest.raw('POST', srv.endpoint, path, body=small,
                                   headers={'Content-Type': ctype})
            self.assertEqual(st, 200, b[:300])
        finally:
            srv.finish()

    def test_5_connection_kept_after_large_bodies(self):
        ds = new_datastore('stow-keepalive')
        payload, ctype = multipart([('application/dicom', read(CT)),
                                    ('application/dicom', b'\0' * (200 << 10))])
        c = http.client.HTTPConnection(urllib.parse.urlparse(SRV.endpoint).netloc, timeout=60)
        for _ in range(2):
            path, headers, body = chunked_request(ds, payload, ctype)
            headers.pop('host')
            c.request('POST', path, body=body, headers=headers)
            r = c.getresponse()
            self.assertEqual(r.status, 202, r.read())
            self.assertNotEqual((r.getheader('Connection') or '').lower(), 'close')
            r.read()
        c.close()

    def test_4_large_body_bounded_memory(self):
        """A 300 MB aws-chunked body (one CT and a 300 MB part that is not DICOM) is spooled
        to disk: the server's peak RSS grows by far less than the body."""
        ds = new_datastore('stow-rss')
        status = '/proc/%d/status' % SRV.proc.pid

        def peak_kib():
            with open(status) as f:
                return int([x for x in f if x.startswith('VmHWM:')][0].split()[1])
        before = peak_kib()
        big = 300 << 20
        boundary = b'rss-boundary'
        head = (b'--%s\r\nContent-Type: application/dicom\r\n\r\n%s\r\n--%s\r\n'
                b'Content-Type: application/dicom\r\n\r\n' % (boundary, read(CT), boundary))
        tail = b'\r\n--%s--\r\n' % boundary
        # The payload is produced and signed piece by piece, never whole in this process either.
        ctype = 'multipart/related; type="application/dicom"; boundary=rss-boundary'
        block = b'\x5a' * (1 << 20)
        sizes = [len(head)] + [len(block)] * (big >> 20) + [len(tail), 0]
        path = '/datastore/%s/studies' % ds
        signer = StreamingSigner(path, ctype, sum(sizes))

        def pieces():
            yield signer.chunk(head)
            for _ in range(big >> 20):
                yield signer.chunk(block)
            yield signer.chunk(tail)
            yield signer.chunk(b'')
        h = dict(signer.headers)
        h['Content-Length'] = str(StreamingSigner.framed_length(sizes))
        st, _, b = send(path, h, pieces())
        self.assertEqual(st, 202, b[:500])
        resp = json.loads(b)
        self.assertEqual(len(seq(resp, '00081199')), 1)
        self.assertEqual(val(seq(resp, '00081198')[0], '00081197'), 0xC000)
        growth_mib = (peak_kib() - before) / 1024
        print('STOW-RS of a %d MiB body: peak RSS %d MiB before, grew by %.1f MiB' %
              (big >> 20, before // 1024, growth_mib), file=sys.stderr)
        self.assertLess(growth_mib, 64)
        self.assertEqual(spool_entries(), [])


if __name__ == '__main__':
    unittest.main(verbosity=2)
