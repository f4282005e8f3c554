#!/usr/bin/env python3
"""One event dispatcher among several nodes (docs/events.md#delivery): two `ahilite serve` nodes
on one PostgreSQL database (multinode.py), both with the same webhook. Data stores are created
and deleted through both nodes in turn; every event reaches the webhook exactly once (no node
failed, so nothing is delivered twice), each data store's four events in order, and exactly one
node dispatches. Then the dispatching node is killed with SIGKILL while the webhook refuses
events: once its lease has expired the other node takes over and delivers what both wrote.
"""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ahltest  # noqa: E402
import multinode  # noqa: E402
from test_events import Receiver  # noqa: E402

FOUR = ['Data Store Creating', 'Data Store Created', 'Data Store Deleting', 'Data Store Deleted']


def boto3_for(endpoint):
    class At:
        pass
    a = At()
    a.endpoint = endpoint
    return ahltest.boto3_client(a)


class MultinodeEvents(unittest.TestCase):
    def test_one_dispatcher(self):
        rx = Receiver()
        cluster = multinode.Cluster(2, extra_args=['--events-webhook', rx.url,
                                                   '--events-retry-max-ms', '400'], tag='ev')
        try:
            clients = [boto3_for(e) for e in cluster.endpoints()]
            made = []
            for k in range(10):
                mi = clients[k % 2]
                ds = mi.create_datastore(datastoreName='mn-%d' % k)['datastoreId']
                clients[(k + 1) % 2].delete_datastore(datastoreId=ds)
                made.append(ds)
            evs = rx.wait_for(lambda evs: len(evs) >= 40)
            time.sleep(1)
            evs = rx.got()
            self.assertEqual(len(evs), 40, 'each event once')
            for ds in made:
                self.assertEqual([e['detail-type'] for e in evs
                                  if e['detail']['datastoreId'] == ds], FOUR)
            self.assertEqual([e['detail']['datastoreId'] for e in evs][::4], made)
            logs = [n.log_text() for n in cluster.nodes]
            dispatching = [i for i, log in enumerate(logs) if ' dispatches' in log]
            self.assertEqual(len(dispatching), 1, logs)

            # The dispatcher dies with events undelivered; the other node takes over.
            rx.failing.set()
            d = dispatching[0]
            other = 1 - d
            late = clients[d].create_datastore(datastoreName='late-a')['datastoreId']
            cluster.kill(d)
            later = clients[other].create_datastore(datastoreName='late-b')['datastoreId']
            rx.failing.clear()
            # All four events of the two late stores, not merely one of each.
            evs = rx.wait_for(lambda evs: len(evs) >= 44, timeout=60)
            time.sleep(1)
            evs = rx.got()
            tail = [(e['detail']['datastoreId'], e['detail-type']) for e in evs[40:]]
            self.assertEqual(tail, [(late, 'Data Store Creating'), (late, 'Data Store Created'),
                                    (later, 'Data Store Creating'),
                                    (later, 'Data Store Created')])
            self.assertIn(' dispatches', cluster.nodes[other].log_text())
            cluster.stop_all()
        finally:
            cluster.close()
            rx.close()


if __name__ == '__main__':
    unittest.main()
