#!/usr/bin/env python3
"""A webhook that accepts every POST (HTTP/1.1, keep-alive) and counts them: the receiving end
when measuring what delivering events costs (bench/RESULTS.md, "What events cost updates").

usage: bench/webhook_sink.py PORT   (prints the count on SIGTERM or Ctrl-C)
"""
import http.server
import signal
import sys

count = 0


class Sink(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def do_POST(self):
        global count
        self.rfile.read(int(self.headers['Content-Length']))
        count += 1
        self.send_response(200)
        self.send_header('Content-Length', '0')
        self.end_headers()

    def log_message(self, *args):
        pass


def main():
    srv = http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), Sink)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    print('events received: %d' % count, flush=True)


if __name__ == '__main__':
    main()
