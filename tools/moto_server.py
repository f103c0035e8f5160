#!/usr/bin/env python3
"""moto's server (the same arguments as `moto_server`), with one guarantee of DynamoDB's that moto
lacks: writes to an item are serialized, so a conditional write's check and its change are one step.

moto serves requests on threads and checks a `ConditionExpression` without a lock, so two
conditional UpdateItems at once on one item can both pass the same check (seen: two instances
repairing one poisoned value, both told it was theirs). DynamoDB never answers so, and the shared
write slots rely on that. SQS requests are left as moto serves them: a long poll must not hold others.

    <venv>/bin/python tools/moto_server.py -H 127.0.0.1 -p PORT
"""

import threading

from moto import server


class DynamoDbInTurn:
    """A WSGI app that lets one DynamoDB request at a time through to moto's app."""

    def __init__(self, app):
        self.app = app
        self.turn = threading.Lock()

    def __call__(self, environ, start_response):
        if not environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            return self.app(environ, start_response)
        with self.turn:
            # The whole answer inside the turn: the write happens while it is produced.
            return list(self.app(environ, start_response))


run_simple = server.run_simple
server.run_simple = lambda host, port, app, **options: run_simple(host, port, DynamoDbInTurn(app), **options)

if __name__ == "__main__":
    server.main()
