"""HealthImaging's EventBridge events, delivered by `ahilite serve` to a webhook and an NDJSON file
(docs/events.md), driven through boto3.

A local HTTP receiver (http.server in a thread) records every POST. The suite makes every detail
type that ahilite emits happen (data store created and deleted, import jobs that complete and
fail, image sets created by import, updated, reverted, copied into a new and an existing set,
deleted, and sets made and added to by STOW-RS) and checks each event's envelope, its detail's fields and the order of the events of each
image set; the file sink must hold the same events, in the same order. Requests that fail (a stale
latestVersionId, a copy onto itself) must write no event: the failure detail types never occur.
Then the receiver answers 503 for a while: the events arrive once it answers 200 again, none lost
and in order; and a server killed with SIGKILL while events wait is started again on its data,
which delivers them (at least once).
"""
import http.server
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ahltest  # noqa: E402

CORPUS = '/usr/lib/python3/dist-packages/pydicom/data/test_files/'
INPUTS = {'in/ct.dcm': 'CT_small.dcm', 'in/mr.dcm': 'MR_small.dcm'}
ROLE = 'arn:aws:iam::123456789012:role/ImportRole'
ENVELOPE_KEYS = ['version', 'id', 'detail-type', 'source', 'account', 'time', 'region',
                 'resources', 'detail']
IMAGE_SET_STATES = {
    'Image Set Created': ('ACTIVE', 'CREATED'),
    'Image Set Copying': ('LOCKED', 'COPYING'),
    'Image Set Copying With Read Only Access': ('LOCKED', 'COPYING_WITH_READ_ONLY_ACCESS'),
    'Image Set Copied': ('ACTIVE', 'COPIED'),
    'Image Set Updating': ('LOCKED', 'UPDATING'),
    'Image Set Updated': ('ACTIVE', 'UPDATED'),
    'Image Set Deleting': ('LOCKED', 'DELETING'),
    'Image Set Deleted': ('DELETED', 'DELETED'),
}
CT_SOP = b'1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322'
NEVER = {'Data Store Creation Failed', 'Image Set Copy Failed', 'Image Set Update Failed'}


class Receiver:
    """A webhook on a free loopback port: records the JSON of each POST it accepts; while
    `failing` is set it answers 503 and records nothing."""

    def __init__(self):
        self.events = []
        self.refused = 0
        self.failing = threading.Event()
        self.lock = threading.Lock()
        rec = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers['Content-Length']))
                if rec.failing.is_set():
                    with rec.lock:
                        rec.refused += 1
                    self.send_response(503)
                    self.send_header('Content-Length', '0')
                    self.end_headers()
                    return
                with rec.lock:
                    rec.events.append((self.headers['Content-Type'], json.loads(body)))
                self.send_response(200)
                self.send_header('Content-Length', '0')
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.url = 'http://127.0.0.1:%d/hook' % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def got(self):
        with self.lock:
            return [e for _, e in self.events]

    def wait_for(self, pred, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            evs = self.got()
            if pred(evs):
                return evs
            time.sleep(0.05)
        raise AssertionError('events not delivered in time: %s' %
                             [(e['detail-type'], e['detail']) for e in self.got()])

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def events_server(receiver, root, events_file, data_from=None, extra=()):
    args = ['--s3-root', root, '--events-webhook', receiver.url, '--events-file', events_file,
            '--events-retry-max-ms', '400'] + list(extra)
    before = (lambda s: shutil.copytree(data_from, s.data_dir)) if data_from else None
    return ahltest.Server(extra_args=args, before_start=before)


def update(mi, ds, sid, version, name):
    doc = {'SchemaVersion': 1.1, 'Patient': {'DICOM': {'PatientName': name}}}
    return mi.update_image_set_metadata(
        datastoreId=ds, imageSetId=sid, latestVersionId=str(version),
        updateImageSetMetadataUpdates={'DICOMUpdates': {
            'updatableAttributes': json.dumps(doc).encode()}})


def import_job(mi, ds, name, bucket='in-bucket'):
    """Starts an import job of the corpus files and waits for its end; its id and status."""
    job = mi.start_dicom_import_job(
        jobName=name, datastoreId=ds, dataAccessRoleArn=ROLE, clientToken=name,
        inputS3Uri='s3://%s/in/' % bucket, outputS3Uri='s3://out-bucket/out/')['jobId']
    return job, ahltest.wait_import_job(mi, ds, job, 120)['jobStatus']


def of_set(events, sid):
    return [e['detail-type'] for e in events if e['detail'].get('imageSetId') == sid]


class Events(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix='ahilite-events-')
        cls.root = os.path.join(cls.tmp, 'buckets')
        for key, name in INPUTS.items():
            p = os.path.join(cls.root, 'in-bucket', key)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            shutil.copy(CORPUS + name, p)
        os.makedirs(os.path.join(cls.root, 'out-bucket'))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def check_envelope(self, e):
        self.assertEqual(list(e), ENVELOPE_KEYS)
        self.assertEqual(e['version'], '0')
        self.assertRegex(e['id'], r'^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-'
                                  r'[0-9a-f]{12}$')
        self.assertEqual(e['source'], 'aws.medical-imaging')
        self.assertEqual(e['account'], ahltest.ACCOUNT)
        self.assertEqual(e['region'], ahltest.REGION)
        self.assertRegex(e['time'], r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$')
        d = e['detail']
        self.assertEqual(d['imagingVersion'], '1.0')
        prefix = 'arn:aws:medical-imaging:%s:%s:datastore/%s' % (
            ahltest.REGION, ahltest.ACCOUNT, d['datastoreId'])
        t = e['detail-type']
        if t.startswith('Data Store'):
            self.assertEqual(list(d), ['imagingVersion', 'datastoreId', 'datastoreName',
                                       'datastoreStatus'])
            self.assertEqual(e['resources'], [prefix])
            want = {'Data Store Creating': 'CREATING', 'Data Store Created': 'ACTIVE',
                    'Data Store Deleting': 'DELETING', 'Data Store Deleted': 'DELETED'}[t]
            self.assertEqual(d['datastoreStatus'], want)
        elif t.startswith('Import Job'):
            self.assertEqual(list(d), ['imagingVersion', 'datastoreId', 'jobId', 'jobName',
                                       'jobStatus', 'inputS3Uri', 'outputS3Uri'])
            self.assertEqual(e['resources'], [prefix])
            want = {'Import Job Submitted': 'SUBMITTED', 'Import Job In Progress': 'IN_PROGRESS',
                    'Import Job Completed': 'COMPLETED', 'Import Job Failed': 'FAILED'}[t]
            self.assertEqual(d['jobStatus'], want)
        else:
            self.assertEqual(list(d), ['imagingVersion', 'datastoreId', 'imageSetId',
                                       'imageSetState', 'imageSetWorkflowStatus'])
            self.assertEqual(e['resources'], [prefix + '/imageset/' + d['imageSetId']])
            self.assertEqual((d['imageSetState'], d['imageSetWorkflowStatus']),
                             IMAGE_SET_STATES[t])

    def test_every_detail_type(self):
        rx = Receiver()
        ev_file = os.path.join(self.tmp, 'events.ndjson')
        srv = events_server(rx, self.root, ev_file)
        try:
            mi = ahltest.boto3_client(srv)
            ds = ahltest.create_active_datastore(mi, 'events-ds')
            ok, status = import_job(mi, ds, 'events-ok')
            self.assertEqual(status, 'COMPLETED')
            bad, status = import_job(mi, ds, 'events-bad', bucket='no-such-bucket')
            self.assertEqual(status, 'FAILED')
            sets = sorted(s['imageSetId'] for s in
                          mi.search_image_sets(datastoreId=ds)['imageSetsMetadataSummaries'])
            self.assertEqual(len(sets), 2)
            a, b = sets
            update(mi, ds, a, 1, 'EVENTS^ONE')
            mi.update_image_set_metadata(datastoreId=ds, imageSetId=a, latestVersionId='2',
                                         updateImageSetMetadataUpdates={'revertToVersionId': '1'})
            # Requests refused write no event.
            with self.assertRaises(mi.exceptions.ConflictException):
                update(mi, ds, a, 1, 'STALE^VERSION')
            with self.assertRaises(mi.exceptions.ValidationException):
                mi.copy_image_set(datastoreId=ds, sourceImageSetId=a, copyImageSetInformation={
                    'sourceImageSet': {'latestVersionId': '3'},
                    'destinationImageSet': {'imageSetId': a, 'latestVersionId': '3'}})
            c = mi.copy_image_set(datastoreId=ds, sourceImageSetId=a, copyImageSetInformation={
                'sourceImageSet': {'latestVersionId': '3'}})
            c = c['destinationImageSetProperties']['imageSetId']
            mi.copy_image_set(datastoreId=ds, sourceImageSetId=b, force=True,
                              copyImageSetInformation={
                                  'sourceImageSet': {'latestVersionId': '1'},
                                  'destinationImageSet': {'imageSetId': c,
                                                          'latestVersionId': '1'}})
            for sid in (a, b, c):
                mi.delete_image_set(datastoreId=ds, imageSetId=sid)
            mi.delete_datastore(datastoreId=ds)

            evs = rx.wait_for(lambda evs: evs and evs[-1]['detail-type'] == 'Data Store Deleted')
            for ct, _ in rx.events:
                self.assertEqual(ct, 'application/json')
            for e in evs:
                self.check_envelope(e)
            types = [e['detail-type'] for e in evs]
            self.assertEqual(len({e['id'] for e in evs}), len(evs), 'ids are unique')
            self.assertFalse(NEVER & set(types))
            self.assertEqual(set(types), {
                'Data Store Creating', 'Data Store Created', 'Data Store Deleting',
                'Data Store Deleted', 'Import Job Submitted', 'Import Job In Progress',
                'Import Job Completed', 'Import Job Failed'} | set(IMAGE_SET_STATES))
            ds_types = [e['detail-type'] for e in evs if e['detail-type'].startswith('Data')]
            self.assertEqual(ds_types, ['Data Store Creating', 'Data Store Created',
                                        'Data Store Deleting', 'Data Store Deleted'])
            self.assertEqual(types[:2], ['Data Store Creating', 'Data Store Created'])
            for e in evs:
                if e['detail-type'].startswith('Data'):
                    self.assertEqual(e['detail']['datastoreName'], 'events-ds')
            for job, end in ((ok, 'Import Job Completed'), (bad, 'Import Job Failed')):
                j = [e for e in evs if e['detail'].get('jobId') == job]
                self.assertEqual([e['detail-type'] for e in j],
                                 ['Import Job Submitted', 'Import Job In Progress', end])
                self.assertEqual(j[0]['detail']['jobName'], 'events-ok' if job == ok else
                                 'events-bad')
            self.assertEqual(of_set(evs, a), [
                'Image Set Created',
                'Image Set Updating', 'Image Set Updated',   # the update
                'Image Set Updating', 'Image Set Updated',   # the revert
                'Image Set Copying With Read Only Access', 'Image Set Copied',  # copy's source
                'Image Set Deleting', 'Image Set Deleted'])
            self.assertEqual(of_set(evs, b), [
                'Image Set Created', 'Image Set Copying With Read Only Access',
                'Image Set Copied', 'Image Set Deleting', 'Image Set Deleted'])
            self.assertEqual(of_set(evs, c), [
                'Image Set Copying', 'Image Set Copied',     # made by the first copy
                'Image Set Copying', 'Image Set Copied',     # merged into by the second
                'Image Set Deleting', 'Image Set Deleted'])
            # A copy's events in AWS's order: source locked, destination copying and copied,
            # source released.
            first_copy = [e['detail-type'] + ':' + e['detail']['imageSetId'][:4] for e in evs
                          if e['detail-type'].startswith('Image Set Cop')][:4]
            self.assertEqual(first_copy, [
                'Image Set Copying With Read Only Access:' + a[:4], 'Image Set Copying:' + c[:4],
                'Image Set Copied:' + c[:4], 'Image Set Copied:' + a[:4]])
            # The jobs' image sets were created while the job ran.
            created = types.index('Image Set Created')
            self.assertLess(types.index('Import Job In Progress'), created)
            self.assertLess(created, types.index('Import Job Completed'))
            # The file holds the same events, in the same order, one a line.
            with open(ev_file) as f:
                lines = f.read().splitlines()
            self.assertEqual([json.loads(x) for x in lines], evs)
        finally:
            srv.finish()
            rx.close()

    def test_webhook_down_then_back(self):
        rx = Receiver()
        rx.url += '?key=do-not-log-me'
        ev_file = os.path.join(self.tmp, 'down.ndjson')
        srv = events_server(rx, self.root, ev_file)
        try:
            mi = ahltest.boto3_client(srv)
            ds = ahltest.create_active_datastore(mi, 'events-down')
            import_job(mi, ds, 'down')
            sid = mi.search_image_sets(datastoreId=ds)['imageSetsMetadataSummaries'][0][
                'imageSetId']
            rx.wait_for(lambda evs: 'Import Job Completed' in [e['detail-type'] for e in evs])
            rx.failing.set()
            for v in range(1, 21):
                update(mi, ds, sid, v, 'DOWN^%d' % v)
            time.sleep(2)  # the dispatcher retries, with backoff, against 503s
            self.assertGreater(rx.refused, 1)
            self.assertEqual(of_set(rx.got(), sid), ['Image Set Created'])
            # The file sink is not held back by the webhook.
            with open(ev_file) as f:
                in_file = [json.loads(x) for x in f.read().splitlines()]
            self.assertEqual(of_set(in_file, sid)[-2:], ['Image Set Updating',
                                                          'Image Set Updated'])
            rx.failing.clear()
            evs = rx.wait_for(lambda evs: of_set(evs, sid).count('Image Set Updated') == 20)
            self.assertEqual(of_set(evs, sid), ['Image Set Created'] +
                             ['Image Set Updating', 'Image Set Updated'] * 20)
            ids = [e['id'] for e in evs]
            self.assertEqual(len(ids), len(set(ids)), 'a 503 is retried, a 200 is not')
            self.assertIn('HTTP 503', srv.log_text())
            self.assertNotIn('do-not-log-me', srv.log_text(), 'the query may hold a secret')
            self.assertEqual([e['id'] for e in in_file if e['detail'].get('imageSetId') == sid],
                             [e['id'] for e in evs if e['detail'].get('imageSetId') == sid])
        finally:
            srv.finish()
            rx.close()

    def test_kill9_then_restart_delivers(self):
        rx = Receiver()
        ev_file = os.path.join(self.tmp, 'kill.ndjson')
        srv = events_server(rx, self.root, ev_file)
        try:
            mi = ahltest.boto3_client(srv)
            ds = ahltest.create_active_datastore(mi, 'events-kill')
            rx.wait_for(lambda evs: len(evs) >= 2)
            rx.failing.set()
            job, _ = import_job(mi, ds, 'kill')
            if ahltest.on_postgres():
                ahltest._schema_of(srv.data_dir)  # the copy below names the same schema
            srv.proc.kill()  # SIGKILL, with every event of the job undelivered
            srv.proc.wait()
            srv.log.close()
        except BaseException:
            srv.finish()
            rx.close()
            raise
        rx.failing.clear()
        again = events_server(rx, self.root, ev_file, data_from=srv.data_dir)
        srv.cleanup()
        try:
            # The killed server's lease (15 s) expires first.
            evs = rx.wait_for(lambda evs: 'Import Job Completed' in
                              [e['detail-type'] for e in evs], timeout=60)
            j = [e['detail-type'] for e in evs if e['detail'].get('jobId') == job]
            self.assertEqual(j, ['Import Job Submitted', 'Import Job In Progress',
                                 'Import Job Completed'])
            self.assertEqual(sum(1 for e in evs if e['detail-type'] == 'Image Set Created'), 2)
            # The restarted server appends every event still in the outbox to the file again,
            # after what the first one wrote there before it was killed.
            with open(ev_file) as f:
                in_file = [json.loads(x)['id'] for x in f.read().splitlines()]
            self.assertEqual(in_file[-(len(evs) - 2):], [e['id'] for e in evs[2:]])
            self.assertEqual([e['id'] for e in evs[:2]], in_file[:2])
        finally:
            again.finish()
            rx.close()

    def test_stow_rs(self):
        rx = Receiver()
        srv = events_server(rx, self.root, os.path.join(self.tmp, 'stow.ndjson'))
        try:
            mi = ahltest.boto3_client(srv)
            ds = ahltest.create_active_datastore(mi, 'events-stow')
            with open(CORPUS + 'CT_small.dcm', 'rb') as f:
                first = f.read()
            # Another instance of the same series: its SOP Instance UID's last digit changed, in
            # the file meta and the dataset.
            assert first.count(CT_SOP) == 2
            second = first.replace(CT_SOP, CT_SOP[:-1] + b'9')
            for dicom in (first, second):
                boundary = 'events-stow'
                body = b'--%s\r\nContent-Type: application/dicom\r\n\r\n%s\r\n--%s--\r\n' % (
                    boundary.encode(), dicom, boundary.encode())
                status, _, answer = ahltest.raw(
                    'POST', srv.endpoint, '/datastore/%s/studies' % ds, body=body,
                    headers={'Content-Type': 'multipart/related; type="application/dicom"; '
                                             'boundary=%s' % boundary,
                             'Accept': 'application/dicom+json'})
                self.assertEqual(status, 200, answer)
            sid = mi.search_image_sets(datastoreId=ds)['imageSetsMetadataSummaries'][0][
                'imageSetId']
            evs = rx.wait_for(lambda evs: len(of_set(evs, sid)) >= 2)
            self.assertEqual(of_set(evs, sid), ['Image Set Created', 'Image Set Updated'])
        finally:
            srv.finish()
            rx.close()

    @unittest.skipIf(ahltest.on_postgres(), 'reads the SQLite file')
    def test_no_sink_writes_nothing(self):
        import sqlite3
        rows = {}
        for sink in (False, True):
            rx = Receiver()
            rx.failing.set()  # with a sink, the events stay in the outbox
            extra = ['--events-webhook', rx.url] if sink else []
            srv = ahltest.Server(extra_args=['--s3-root', self.root] + extra)
            try:
                mi = ahltest.boto3_client(srv)
                ahltest.create_active_datastore(mi, 'quiet')
                srv.stop()
                db = sqlite3.connect(os.path.join(srv.data_dir, 'ahilite.db'))
                rows[sink] = db.execute('SELECT count(*) FROM event_outbox').fetchone()[0]
                db.close()
            finally:
                srv.stop()
                srv.cleanup()
                rx.close()
        self.assertEqual(rows, {False: 0, True: 2})

    def test_bad_options(self):
        import subprocess
        for args, msg in ((['--events-webhook', 'ftp://x/'], 'not an http'),
                          (['--events-file', '/nonexistent-dir/x.ndjson'], 'cannot open'),
                          (['--events-max-backlog', '0'], 'takes a number')):
            p = subprocess.run([ahltest.real_binary(), 'serve', '--data-dir',
                                os.path.join(self.tmp, 'bad'), '--listen', '127.0.0.1:0'] + args,
                               capture_output=True, text=True, timeout=30)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn(msg, p.stderr)


if __name__ == '__main__':
    unittest.main()
