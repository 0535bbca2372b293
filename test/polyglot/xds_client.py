#!/usr/bin/python3
"""A proxyless xDS client in Python, driven by python-xds.test.ts.

Uses only Debian's python3-grpcio (C-core, with its xDS resolver): the
bootstrap file is named by GRPC_XDS_BOOTSTRAP, set by the test. No stubs:
/test.Who/Who is called generically, its request and answer raw bytes (the
answer is the name of the backend that served the call).

Calls the target in a loop, one call at a time, and prints one JSON line per
call: {"at": wall-clock ms when it ended, "answer": name} or {"at", "code",
"details"}. Stops when its stdin closes (the test's way to end it), or after
--max-seconds.
"""

import argparse
import json
import sys
import threading
import time

import grpc


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", required=True, help="xds:///<service type>")
    parser.add_argument("--timeout", type=float, default=2.0, help="each call's deadline, seconds")
    parser.add_argument("--gap", type=float, default=0.01, help="pause between calls, seconds (keeps the output small)")
    parser.add_argument("--max-seconds", type=float, default=50.0, help="watchdog: stop after this long")
    args = parser.parse_args()

    stop = threading.Event()

    def watch_stdin():
        sys.stdin.read()  # returns at EOF: the test closed our stdin
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    until = time.monotonic() + args.max_seconds
    with grpc.insecure_channel(args.target) as channel:
        who = channel.unary_unary("/test.Who/Who", request_serializer=None, response_deserializer=None)
        while not stop.is_set() and time.monotonic() < until:
            try:
                answer = who(b"", timeout=args.timeout)
                line = {"answer": answer.decode()}
            except grpc.RpcError as err:
                line = {"code": err.code().name, "details": err.details()}
            line["at"] = time.time() * 1000
            print(json.dumps(line), flush=True)
            stop.wait(args.gap)


if __name__ == "__main__":
    main()
