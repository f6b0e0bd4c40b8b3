"""An SMTP server that misbehaves on purpose, for leakwatch's fault tests. Standard library
only: a server that breaks the protocol cannot be built from a library that keeps it.

Modes (--mode):
  drop-mid-data   the first --count DATA transfers are cut: after the message's headers
                  the connection is reset (no reply). Later ones are accepted.
  tempfail-then-permfail
                  the recipient --victim gets 451 at end of DATA the first time, 550 every
                  time after; every other message is accepted.
  stall           greets, then never answers anything (a server that hangs).

Accepted messages are written to OUTDIR as NNNN.eml with NNNN.json (envelope) beside,
as tests/support/smtpd.py does; every DATA attempt is logged in OUTDIR/attempts.jsonl.
Prints "READY" once listening; stops on stdin EOF.
"""

import argparse
import asyncio
import json
import os
import socket
import struct
import sys
import threading


class Server:
    def __init__(self, a):
        self.a = a
        self.cut_left = a.count
        self.victim_seen = 0
        self.accepted = 0

    def log(self, entry):
        with open(os.path.join(self.a.outdir, "attempts.jsonl"), "a") as f:
            f.write(json.dumps(entry) + "\n")

    def save(self, mail_from, rcpts, data):
        self.accepted += 1
        base = os.path.join(self.a.outdir, "%04d" % self.accepted)
        with open(base + ".json", "w") as f:
            json.dump({"mail_from": mail_from, "rcpt_tos": rcpts, "tls": False, "auth_login": None}, f)
        with open(base + ".eml.tmp", "wb") as f:
            f.write(data)
        os.rename(base + ".eml.tmp", base + ".eml")

    async def session(self, reader, writer):
        def send(line):
            writer.write((line + "\r\n").encode())

        send("220 faults.test ESMTP")
        await writer.drain()
        if self.a.mode == "stall":
            # Read and never answer, until the client gives up.
            while await reader.read(4096):
                pass
            writer.close()
            return
        mail_from, rcpts = None, []
        while True:
            line = await reader.readline()
            if not line:
                break
            cmd = line.decode("utf-8", "replace").strip()
            verb = cmd.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                send("250-faults.test")
                send("250 8BITMIME")
            elif verb == "MAIL":
                mail_from, rcpts = cmd.split(":", 1)[1].strip().strip("<>").split(">")[0], []
                send("250 OK")
            elif verb == "RCPT":
                rcpts.append(cmd.split(":", 1)[1].strip().strip("<>").split(">")[0])
                send("250 OK")
            elif verb == "DATA":
                send("354 go on")
                await writer.drain()
                cut = self.a.mode == "drop-mid-data" and self.cut_left > 0
                if cut:
                    self.cut_left -= 1
                body = b""
                while True:
                    chunk = await reader.readline()
                    if not chunk:
                        return
                    if cut and chunk in (b"\r\n", b"\n"):
                        # The headers are in: reset the connection, mid-message.
                        self.log({"rcpt_tos": rcpts, "result": "cut"})
                        sock = writer.get_extra_info("socket")
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        writer.transport.abort()
                        return
                    if chunk == b".\r\n":
                        break
                    body += chunk[1:] if chunk.startswith(b"..") else chunk
                if self.a.mode == "tempfail-then-permfail" and self.a.victim in rcpts:
                    self.victim_seen += 1
                    reply = "451 4.3.0 try later" if self.victim_seen == 1 else "550 5.1.1 no such user"
                    self.log({"rcpt_tos": rcpts, "result": reply[:3]})
                    send(reply)
                else:
                    self.save(mail_from, rcpts, body)
                    self.log({"rcpt_tos": rcpts, "result": "250"})
                    send("250 OK queued")
            elif verb == "RSET":
                mail_from, rcpts = None, []
                send("250 OK")
            elif verb == "NOOP":
                send("250 OK")
            elif verb == "QUIT":
                send("221 bye")
                await writer.drain()
                break
            else:
                send("502 not implemented")
            await writer.drain()
        writer.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--outdir", required=True)
    p.add_argument("--mode", required=True, choices=["drop-mid-data", "tempfail-then-permfail", "stall"])
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--victim", default="")
    a = p.parse_args()
    os.makedirs(a.outdir, exist_ok=True)
    srv = Server(a)

    async def run():
        server = await asyncio.start_server(srv.session, "127.0.0.1", a.port)
        print("READY", flush=True)
        loop = asyncio.get_running_loop()
        stop = loop.create_future()
        threading.Thread(
            target=lambda: (sys.stdin.read(), loop.call_soon_threadsafe(stop.set_result, None)),
            daemon=True,
        ).start()
        async with server:
            await stop

    asyncio.run(run())


if __name__ == "__main__":
    main()
