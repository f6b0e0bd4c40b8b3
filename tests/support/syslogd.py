"""A syslog receiver for leakwatch's SIEM test, Python standard library only: a Unix
datagram socket (as /dev/log is), UDP (one message per datagram) and TCP (RFC 6587 octet
counting: "LEN SP MSG"), on loopback.
Each message is appended to --log as a JSON line {"proto", "raw"}. Prints READY; stops
on stdin EOF."""

import argparse
import json
import socketserver
import sys
import threading

LOCK = threading.Lock()


def record(args, proto, raw):
    with LOCK:
        with open(args.log, "a") as f:
            f.write(json.dumps({"proto": proto, "raw": raw.decode("utf-8", "replace")}) + "\n")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--udp", type=int)
    p.add_argument("--tcp", type=int)
    p.add_argument("--unix")
    p.add_argument("--log", required=True)
    args = p.parse_args()

    class Udp(socketserver.BaseRequestHandler):
        def handle(self):
            record(args, "udp", self.request[0])

    class Tcp(socketserver.StreamRequestHandler):
        def handle(self):
            while True:
                length = b""
                while True:
                    c = self.rfile.read(1)
                    if not c:
                        return
                    if c == b" ":
                        break
                    if not c.isdigit() or len(length) > 8:
                        record(args, "tcp-error", length + c)
                        return
                    length += c
                record(args, "tcp", self.rfile.read(int(length)))

    class Unix(socketserver.BaseRequestHandler):
        def handle(self):
            record(args, "unix", self.request[0])

    servers = []
    if args.unix:
        servers.append(socketserver.UnixDatagramServer(args.unix, Unix))
    if args.udp:
        servers.append(socketserver.ThreadingUDPServer(("127.0.0.1", args.udp), Udp))
    if args.tcp:
        socketserver.ThreadingTCPServer.allow_reuse_address = True
        servers.append(socketserver.ThreadingTCPServer(("127.0.0.1", args.tcp), Tcp))
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    print("READY", flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main()
