"""A real SMTP server for leakwatch's tests: aiosmtpd on loopback, saving what it receives.

Each accepted message is written to OUTDIR as NNNN.eml, with NNNN.json beside it holding
the envelope, whether the session was TLS and who authenticated. Options make it fail
the first N messages with a temporary error, require STARTTLS (with a throwaway CA made
by trustme, whose certificate is written to OUTDIR/ca.pem) and require AUTH.

Prints "READY" on stdout once it accepts connections; stops on SIGTERM or stdin EOF.
"""

import argparse
import json
import logging
import os
import signal
import ssl
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Handler:
    def __init__(self, outdir, fail_first):
        self.outdir = outdir
        self.fail_left = fail_first
        self.count = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            if self.fail_left > 0:
                self.fail_left -= 1
                return "451 4.3.0 Test server: try again later"
            self.count += 1
            n = self.count
        base = os.path.join(self.outdir, "%04d" % n)
        with open(base + ".eml.tmp", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "tls": session.ssl is not None,
            "auth_login": (session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None),
        }
        with open(base + ".json", "w") as f:
            json.dump(meta, f)
        os.rename(base + ".eml.tmp", base + ".eml")
        return "250 2.0.0 OK"


def authenticator(expected_login, expected_password):
    def check(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == expected_login
            and auth_data.password.decode() == expected_password
        )
        return AuthResult(success=ok, auth_data=auth_data if ok else None)

    return check


def main():
    # aiosmtpd logs a warning about its own deprecated Session.login_data on every AUTH.
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--outdir", required=True)
    p.add_argument("--fail-first", type=int, default=0)
    p.add_argument("--starttls", action="store_true")
    p.add_argument("--auth", help="LOGIN:PASSWORD that clients must use")
    a = p.parse_args()
    os.makedirs(a.outdir, exist_ok=True)
    kwargs = {}
    if a.starttls:
        import trustme

        ca = trustme.CA()
        cert = ca.issue_cert("localhost", "127.0.0.1")
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(ctx)
        ca.cert_pem.write_to_path(os.path.join(a.outdir, "ca.pem"))
        kwargs.update(tls_context=ctx, require_starttls=True)
    if a.auth:
        login, password = a.auth.split(":", 1)
        kwargs.update(authenticator=authenticator(login, password), auth_required=True,
                      auth_require_tls=a.starttls)
    c = Controller(Handler(a.outdir, a.fail_first), hostname="127.0.0.1", port=a.port, **kwargs)
    c.start()
    print("READY", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    stop.wait()
    c.stop()


if __name__ == "__main__":
    main()
