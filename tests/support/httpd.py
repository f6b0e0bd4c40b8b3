"""A real HTTP server for leakwatch's feed tests, on loopback, Python standard library only.

Serves:
  /files/NAME     files of --root, with ETag (SHA-1 of the content) and Last-Modified;
                  If-None-Match -> 304; Range: bytes=N- -> 206 (honouring If-Range).
                  --cut NAME: the first full answer for NAME announces its whole length,
                  sends half the body and closes the connection (a cut download).
                  --fail-first N: the first N requests for files answer 500.
                  --trickle NAME: NAME is sent a byte every 0.1 s (a stalling server).
  /range/PREFIX   a k-anonymity range API over the hashes in --range-hashes (lines
                  HASH:COUNT): lines SUFFIX:COUNT; with "Add-Padding: true", 40 extra
                  random suffixes with count 0. Anything but 5 hex digits -> 400.
  /api/v3/breacheddomain/D, /api/v3/stealerlogsbyemaildomain/D
                  HIBP-like answers from --hibp (JSON: {"breaches": {D: {alias: [..]}},
                  "stealer": {D: {alias: [..]}}}); the hibp-api-key header must equal the
                  content of --hibp-key, and the very first request answers 429 with
                  Retry-After: 1.

  /redirect?to=URL
                  302 to URL (the query's value, percent-decoded).
  /loop           302 to itself, forever.
  /reset/NAME     NAME's headers and half its body, then a TCP reset; every time.
  /lie/NAME       NAME whole, under a Content-Length twice its size, then the connection
                  closed; every time, Range or not.

Every request is logged to --log as one JSON object per line: method, path, client
address, the headers that matter, the status sent.

Prints "READY" on stdout once it listens; stops on stdin EOF.
"""

import argparse
import hashlib
import json
import os
import random
import sys
import threading
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()


class State:
    def __init__(self, args):
        self.args = args
        self.fail_left = args.fail_first
        self.cut_done = set()
        self.hibp_429_done = False
        self.range = {}
        if args.range_hashes:
            with open(args.range_hashes) as f:
                for line in f:
                    line = line.strip()
                    if not line:
                        continue
                    h, count = line.split(":")
                    self.range.setdefault(h[:5].upper(), []).append((h[5:].upper(), int(count)))
        self.hibp = {}
        if args.hibp:
            with open(args.hibp) as f:
                self.hibp = json.load(f)
        self.hibp_key = None
        if args.hibp_key:
            with open(args.hibp_key) as f:
                self.hibp_key = f.read().strip()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def log_request_json(self, status):
        entry = {
            "method": self.command,
            "path": self.path,
            "client": self.client_address[0],
            "status": status,
            "range": self.headers.get("Range"),
            "if_range": self.headers.get("If-Range"),
            "if_none_match": self.headers.get("If-None-Match"),
            "if_modified_since": self.headers.get("If-Modified-Since"),
            "add_padding": self.headers.get("Add-Padding"),
            "user_agent": self.headers.get("User-Agent"),
            "authorization": self.headers.get("Authorization"),
            "x_api_key": self.headers.get("X-Api-Key"),
            "referer": self.headers.get("Referer"),
            "host": self.headers.get("Host"),
            "hibp_api_key_ok": self.server.state.hibp_key is not None
            and self.headers.get("hibp-api-key") == self.server.state.hibp_key,
        }
        with LOCK:
            with open(self.server.state.args.log, "a") as f:
                f.write(json.dumps(entry) + "\n")

    def send_plain(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.log_request_json(status)

    def do_GET(self):
        st = self.server.state
        path = self.path.split("?")[0]
        if path.startswith("/files/"):
            return self.serve_file(path[len("/files/"):])
        if path.startswith("/range/"):
            return self.serve_range(path[len("/range/"):])
        if path.startswith("/api/v3/"):
            return self.serve_hibp(path[len("/api/v3/"):])
        if path == "/loop":
            return self.send_plain(302, b"", [("Location", "/loop")])
        if path.startswith("/reset/") or path.startswith("/lie/"):
            return self.serve_broken(path)
        if path == "/redirect":
            from urllib.parse import parse_qs, urlsplit
            to = parse_qs(urlsplit(self.path).query).get("to", [""])[0]
            return self.send_plain(302, b"", [("Location", to)])
        self.send_plain(404, b"not found\n")

    def serve_file(self, name):
        st = self.server.state
        with LOCK:
            if st.fail_left > 0:
                st.fail_left -= 1
                fail = True
            else:
                fail = False
        if fail:
            return self.send_plain(500, b"test server: failing on purpose\n")
        if st.args.auth and self.headers.get("Authorization") != st.args.auth:
            return self.send_plain(401, b"unauthorised\n")
        fp = os.path.join(st.args.root, os.path.basename(name))
        if not os.path.isfile(fp):
            return self.send_plain(404, b"no such file\n")
        with open(fp, "rb") as f:
            data = f.read()
        etag = '"%s"' % hashlib.sha1(data).hexdigest()
        last_modified = formatdate(os.path.getmtime(fp), usegmt=True)
        common = [("ETag", etag), ("Last-Modified", last_modified), ("Accept-Ranges", "bytes")]
        if self.headers.get("If-None-Match") == etag:
            return self.send_plain(304, b"", common)
        rng = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        if rng and rng.startswith("bytes=") and rng.endswith("-") and (if_range is None or if_range == etag):
            start = int(rng[len("bytes="):-1])
            if start < len(data):
                body = data[start:]
                return self.send_plain(
                    206, body, common + [("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data)))]
                )
        with LOCK:
            cut = name in (st.args.cut or []) and name not in st.cut_done
            if cut:
                st.cut_done.add(name)
        if name in (st.args.trickle or []):
            # Headers at once, then the body a byte every tenth of a second: never silent
            # long enough for a read timeout, never done.
            import time

            self.send_response(200)
            for k, v in common:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.log_request_json("200-trickle")
            try:
                for b in data:
                    self.wfile.write(bytes([b]))
                    self.wfile.flush()
                    time.sleep(0.1)
            except OSError:
                pass
            self.close_connection = True
            return
        if cut:
            self.send_response(200)
            for k, v in common:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.log_request_json("200-cut")
            self.close_connection = True
            import socket

            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_plain(200, data, common)

    def serve_broken(self, path):
        import socket
        import struct

        kind, name = path[1:].split("/", 1)
        fp = os.path.join(self.server.state.args.root, os.path.basename(name))
        with open(fp, "rb") as f:
            data = f.read()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data) * (2 if kind == "lie" else 1)))
        self.end_headers()
        self.wfile.write(data if kind == "lie" else data[: len(data) // 2])
        self.wfile.flush()
        self.log_request_json("200-" + kind)
        self.close_connection = True
        if kind == "reset":
            # SO_LINGER 0: close sends RST, not FIN.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        else:
            self.connection.shutdown(socket.SHUT_RDWR)

    def serve_range(self, prefix):
        st = self.server.state
        if len(prefix) != 5 or any(c not in "0123456789ABCDEFabcdef" for c in prefix):
            return self.send_plain(400, b"the prefix must be 5 hex digits\n")
        lines = ["%s:%d" % (s, c) for s, c in st.range.get(prefix.upper(), [])]
        if self.headers.get("Add-Padding") == "true":
            for _ in range(40):
                lines.append("%035X:0" % random.getrandbits(140))
        random.shuffle(lines)
        self.send_plain(200, ("\r\n".join(lines)).encode(), [("Content-Type", "text/plain")])

    def serve_hibp(self, rest):
        st = self.server.state
        with LOCK:
            first = not st.hibp_429_done
            st.hibp_429_done = True
        if first:
            return self.send_plain(429, b'{"statusCode":429}', [("Retry-After", "1")])
        if st.hibp_key is None or self.headers.get("hibp-api-key") != st.hibp_key:
            return self.send_plain(401, b'{"statusCode":401}')
        parts = rest.split("/")
        if len(parts) != 2:
            return self.send_plain(404, b"")
        what, domain = parts
        table = {"breacheddomain": "breaches", "stealerlogsbyemaildomain": "stealer"}.get(what)
        answer = st.hibp.get(table, {}).get(domain) if table else None
        if not answer:
            return self.send_plain(404, b"")
        self.send_plain(200, json.dumps(answer).encode(), [("Content-Type", "application/json")])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--bind", default="127.0.0.1")
    p.add_argument("--root", default=".")
    p.add_argument("--log", required=True)
    p.add_argument("--cut", action="append")
    p.add_argument("--trickle", action="append")
    p.add_argument("--fail-first", type=int, default=0)
    p.add_argument("--auth")
    p.add_argument("--range-hashes")
    p.add_argument("--hibp")
    p.add_argument("--hibp-key")
    args = p.parse_args()
    server = ThreadingHTTPServer((args.bind, args.port), Handler)
    server.daemon_threads = True
    server.state = State(args)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print("READY", flush=True)
    sys.stdin.read()
    server.shutdown()


if __name__ == "__main__":
    main()
