"""What unauthenticated or misbehaving clients can take from `ahilite serve`, and what they cannot.

- Bursts of connections that send a request line and close must not leave the server's connection
  table full of half-closed sockets: a signed request right after three bursts of 2,000 is answered
  within seconds, and no connection stays in CLOSE-WAIT.
- A slowloris (2,000 sockets trickling one header line every 5 s) must not keep legitimate clients
  out: at least 90% of their requests succeed while it runs, and its connections are shut down once
  their headers are 10 s late.
- Bodies are not buffered before authentication: 500 concurrent unsigned 1 MiB requests keep the
  server's RSS under 200 MB, and it falls back near idle afterwards.
- Ambiguous framing (two Content-Length headers, Content-Length beside chunked) is refused and the
  connection closed.

The attackers use the loopback address 127.0.0.2, the legitimate clients 127.0.0.1, as two
machines would."""
# pg: no (the HTTP server's connection limits: no storage in question)
import os
import selectors
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ahltest  # noqa: E402

ATTACKER = '127.0.0.2'


def rss_kb(pid):
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    return 0


def close_wait(port):
    """Server-side sockets of port in CLOSE-WAIT (state 08 in /proc/net/tcp)."""
    n = 0
    for table in ('/proc/net/tcp', '/proc/net/tcp6'):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[3] == '08' and int(parts[1].split(':')[1], 16) == port:
                        n += 1
        except FileNotFoundError:
            pass
    return n


def attacker_socket(port):
    s = socket.socket()
    s.setblocking(False)
    s.bind((ATTACKER, 0))
    try:
        s.connect(('127.0.0.1', port))
    except BlockingIOError:
        pass
    return s


def ask(endpoint, timeout=10):
    """One signed GET /datastore on a new connection; True when answered 200 within timeout."""
    host, port = endpoint.split('://', 1)[1].split(':')
    data = ahltest.signed_bytes('GET', endpoint, '/datastore')
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as s:
            s.sendall(data)
            reply = b''
            while b'\r\n\r\n' not in reply:
                chunk = s.recv(4096)
                if not chunk:
                    return False
                reply += chunk
            return reply.startswith(b'HTTP/1.1 200')
    except OSError:
        return False


class Limits(unittest.TestCase):
    # A server each, so that one attack's leftovers never decide another test.
    def setUp(self):
        self.srv = ahltest.Server()
        self.port = self.srv.port

    def tearDown(self):
        self.srv.stop()
        self.srv.cleanup()

    def test_bursts_of_partial_requests(self):
        for _ in range(3):
            socks = [attacker_socket(self.port) for _ in range(2000)]
            time.sleep(0.2)
            for s in socks:
                try:
                    s.send(b'GET / HTTP/1.1\r\n')
                except OSError:
                    pass
                s.close()
        t0 = time.time()
        ok = False
        while not ok and time.time() - t0 < 5:
            ok = ask(self.srv.endpoint, timeout=2)
        self.assertTrue(ok, 'no signed request answered within 5 s of the bursts')
        deadline = time.time() + 5
        while close_wait(self.port) and time.time() < deadline:
            time.sleep(0.2)
        self.assertEqual(close_wait(self.port), 0)

    def test_slowloris(self):
        stop = threading.Event()
        shut_down = [0]

        def slowloris():
            sel = selectors.DefaultSelector()
            socks = []
            for _ in range(2000):
                s = attacker_socket(self.port)
                socks.append(s)
            time.sleep(0.5)
            for s in socks:
                try:
                    s.send(b'GET /datastore HTTP/1.1\r\nHost: x\r\n')
                except OSError:
                    pass
                sel.register(s, selectors.EVENT_READ)
            while not stop.wait(5):
                for s in list(socks):
                    try:
                        s.send(b'X-Slow: 1\r\n')
                    except OSError:
                        sel.unregister(s)
                        socks.remove(s)
                        s.close()
                        shut_down[0] += 1
                # Sockets the server shut down read as end-of-file.
                for key, _ in sel.select(0):
                    try:
                        if key.fileobj.recv(4096) == b'':
                            raise OSError
                    except OSError:
                        sel.unregister(key.fileobj)
                        socks.remove(key.fileobj)
                        key.fileobj.close()
                        shut_down[0] += 1
            for s in socks:
                s.close()

        t = threading.Thread(target=slowloris)
        t.start()
        try:
            time.sleep(2)
            results = []
            t0 = time.time()
            while time.time() - t0 < 14:
                results.append(ask(self.srv.endpoint, timeout=5))
                time.sleep(0.1)
        finally:
            stop.set()
            t.join(60)
        rate = sum(results) / len(results)
        print('slowloris: %d of %d legitimate requests answered, %d attacker connections shut down'
              % (sum(results), len(results), shut_down[0]), file=sys.stderr)
        self.assertGreaterEqual(rate, 0.9, '%d of %d legitimate requests answered' %
                                (sum(results), len(results)))
        # The connections the server let in (64 from one address) were shut down as late.
        self.assertGreater(shut_down[0], 0)

    def test_unsigned_bodies_are_not_buffered(self):
        pid = self.srv.proc.pid
        idle = rss_kb(pid)
        body = b'x' * (1 << 20)
        head = (b'POST /datastore HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n'
                b'Content-Length: %d\r\n\r\n' % len(body))
        peak = [idle]
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                peak[0] = max(peak[0], rss_kb(pid))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            # Eight client addresses, so the per-address limit (64) lets all 500 in.
            socks = []
            for i in range(500):
                s = socket.socket()
                s.bind(('127.0.0.%d' % (3 + i % 8), 0))
                s.connect(('127.0.0.1', self.port))
                s.setblocking(False)
                socks.append([s, head + body])
            deadline = time.time() + 30
            while any(p for _, p in socks) and time.time() < deadline:
                for item in socks:
                    s, pending = item
                    if not pending:
                        continue
                    try:
                        n = s.send(pending[:65536])
                        item[1] = pending[n:]
                    except BlockingIOError:
                        pass
                    except OSError:
                        item[1] = b''  # the server answered and closed: nothing more is read
                time.sleep(0.001)
            for s, _ in socks:
                s.close()
        finally:
            time.sleep(1)
            stop.set()
            sampler.join()
        after = rss_kb(pid)
        print('RSS: idle %d KB, peak %d KB, after %d KB' % (idle, peak[0], after), file=sys.stderr)
        self.assertLess(peak[0], 200 * 1024, 'peak RSS %d KB (idle %d KB)' % (peak[0], idle))
        self.assertLess(after, idle + 32 * 1024, 'RSS %d KB after the load (idle %d KB)' %
                        (after, idle))
        self.assertTrue(ask(self.srv.endpoint))

    def test_ambiguous_framing_is_refused(self):
        ep = self.srv.endpoint
        body = b'{"datastoreName":"framing"}'
        signed = ahltest.signed_bytes('POST', ep, '/datastore', body=body,
                                      headers={'Content-Type': 'application/json'})
        head, _ = signed.split(b'\r\n\r\n', 1)
        length = b'Content-Length: %d' % len(body)
        cases = {
            'two lengths': head + b'\r\n' + length + b'\r\n\r\n' + body,
            'length and chunked': head.replace(length, b'Transfer-Encoding: chunked\r\n' + length)
            + b'\r\n\r\n%x\r\n' % len(body) + body + b'\r\n0\r\n\r\n',
        }
        for name, data in cases.items():
            with socket.create_connection(('127.0.0.1', self.port), timeout=5) as s:
                s.sendall(data)
                reply = b''
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break  # closed by the server
                    reply += chunk
            self.assertTrue(reply.startswith(b'HTTP/1.1 400'), (name, reply[:200]))
            self.assertIn(b'ValidationException', reply, name)
        mi = ahltest.boto3_client(self.srv)
        names = [d['datastoreName'] for d in mi.list_datastores()['datastoreSummaries']]
        self.assertNotIn('framing', names)

    def test_header_size_limit(self):
        """Headers up to the connection's 32 KiB are read (a signed request with 20 KB of an extra
        header is answered); past it the answer is 431 and the connection is closed."""
        ep = self.srv.endpoint
        for size, status in ((20_000, b'200'), (40_000, b'431')):
            signed = ahltest.signed_bytes('GET', ep, '/datastore',
                                          headers={'X-Padding': 'p' * size})
            with socket.create_connection(('127.0.0.1', self.port), timeout=5) as s:
                s.sendall(signed)
                reply = s.recv(65536)
            self.assertTrue(reply.startswith(b'HTTP/1.1 ' + status), (size, reply[:200]))
        self.assertTrue(ask(ep))


if __name__ == '__main__':
    unittest.main()
