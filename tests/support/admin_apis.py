"""Stand-ins for the admin APIs leakwatch's remediation calls, on loopback, Python standard
library only. No Keycloak or Microsoft Graph server installs from this machine's
registries, so this server implements the documented endpoints leakwatch uses and checks
every request (method, path, authentication, body) against the documentation:

Keycloak (https://www.keycloak.org/docs-api/latest/rest-api/):
  POST /realms/R/protocol/openid-connect/token   client_credentials grant, form-encoded
  GET  /admin/realms/R/users?username=U&exact=true (or email=E)
  GET  /admin/realms/R/users?first=N&max=M&briefRepresentation=true
  GET  /admin/realms/R/users/ID/credentials     (the user's "passwordCreated", ms, if any)
  PUT  /admin/realms/R/users/ID                  JSON UserRepresentation (partial)
  POST /admin/realms/R/users/ID/logout
Microsoft Graph (https://learn.microsoft.com/graph/api/):
  POST /TENANT/oauth2/v2.0/token                 client_credentials, scope .../.default
  POST /v1.0/users/UPN/revokeSignInSessions
  PATCH /v1.0/users/UPN                          {"accountEnabled": false} or passwordProfile
SIEM webhook:
  POST /siem     X-Leakwatch-Signature checked as for /hook.
Webhook:
  POST /hook     X-Leakwatch-Signature checked (HMAC-SHA256 of the body, --hook-secret);
                 --hook-fail N: the first N answer 503.

--users FILE: JSON [{"id", "username", "email"}]. GET /state gives each user's state.
Every request is logged to --log as a JSON line: api, method, path, ok (all checks
passed), why (the first that failed), body. Prints READY; stops on stdin EOF.
"""

import argparse
import hashlib
import hmac
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

LOCK = threading.Lock()
REALM = "agence"
TENANT = "agence-exemple.fr"
KC_CLIENT = ("leakwatch", "kc-secret-synthetic")
GRAPH_CLIENT = ("0f1e2d3c-leakwatch", "graph-secret-synthetic")
GRAPH_SCOPE = "https://graph.microsoft.com/.default"


class State:
    def __init__(self, args):
        self.args = args
        self.users = {}
        if args.users:
            with open(args.users) as f:
                for u in json.load(f):
                    u.setdefault("enabled", True)
                    u.setdefault("requiredActions", [])
                    u["logouts"] = 0
                    u["graph"] = {"accountEnabled": True, "revoked": 0, "forceChange": False}
                    self.users[u["id"]] = u
        self.tokens = {"keycloak": set(), "graph": set()}
        self.issued = 0
        self.hook_fail = args.hook_fail
        self.hook_secret = None
        if args.hook_secret:
            with open(args.hook_secret, "rb") as f:
                self.hook_secret = f.read().rstrip(b"\r\n")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def answer(self, api, status, payload=None, why=None, body=None):
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        if payload is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        entry = {
            "api": api,
            "method": self.command,
            "path": self.path,
            "status": status,
            "ok": why is None,
            "why": why,
            "body": body,
            "action_header": self.headers.get("X-Leakwatch-Action"),
        }
        with LOCK:
            with open(self.server.state.args.log, "a") as f:
                f.write(json.dumps(entry) + "\n")

    def bearer(self, api):
        auth = self.headers.get("Authorization") or ""
        return auth.startswith("Bearer ") and auth[7:] in self.server.state.tokens[api]

    def token(self, api, client, scope):
        st = self.server.state
        raw = self.body()
        if self.headers.get("Content-Type") != "application/x-www-form-urlencoded":
            return self.answer(api, 400, {"error": "invalid_request"}, "token: not a form")
        form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        shown = {k: v for k, v in form.items() if k != "client_secret"}
        if form.get("grant_type") != "client_credentials":
            return self.answer(api, 400, {"error": "unsupported_grant_type"}, "token: grant", shown)
        if (form.get("client_id"), form.get("client_secret")) != client:
            return self.answer(api, 401, {"error": "invalid_client"}, "token: client", shown)
        if scope is not None and form.get("scope") != scope:
            return self.answer(api, 400, {"error": "invalid_scope"}, "token: scope", shown)
        with LOCK:
            st.issued += 1
            tok = f"{api}-token-{st.issued}"
            st.tokens[api].add(tok)
        return self.answer(api, 200, {"access_token": tok, "token_type": "Bearer", "expires_in": 300}, None, shown)

    def user_by(self, field, value):
        return [u for u in self.server.state.users.values() if u.get(field) == value]

    def kc_view(self, u):
        return {k: u[k] for k in ("id", "username", "email", "enabled", "requiredActions")}

    def route(self):
        st = self.server.state
        parts = urlsplit(self.path)
        segs = [unquote(s) for s in parts.path.split("/") if s]
        m = self.command
        if segs == ["state"] and m == "GET":
            return self.answer("state", 200, list(st.users.values()))
        # Keycloak
        if segs == ["realms", REALM, "protocol", "openid-connect", "token"] and m == "POST":
            return self.token("keycloak", KC_CLIENT, None)
        if segs[:4] == ["admin", "realms", REALM, "users"]:
            if not self.bearer("keycloak"):
                self.body()
                return self.answer("keycloak", 401, {"error": "HTTP 401 Unauthorized"}, "no valid bearer token")
            q = {k: v[0] for k, v in parse_qs(parts.query).items()}
            if len(segs) == 4 and m == "GET" and "first" in q:
                # The realm listed a page at a time (brief representations).
                if set(q) != {"first", "max", "briefRepresentation"} or q["briefRepresentation"] != "true":
                    return self.answer("keycloak", 400, {"error": "bad query"}, f"list query {q}")
                first, size = int(q["first"]), int(q["max"])
                if not 0 < size <= 1000:
                    return self.answer("keycloak", 400, {"error": "bad max"}, f"max {size}")
                page = sorted(st.users.values(), key=lambda u: u["id"])[first:first + size]
                return self.answer("keycloak", 200, [self.kc_view(u) for u in page])
            if len(segs) == 4 and m == "GET":
                if q.get("exact") != "true" or len(q) != 2 or not ({"username", "email"} & q.keys()):
                    return self.answer("keycloak", 400, {"error": "bad query"}, f"search query {q}")
                field = "username" if "username" in q else "email"
                found = [self.kc_view(u) for u in self.user_by(field, q[field])]
                return self.answer("keycloak", 200, found)
            uid = segs[4] if len(segs) > 4 else None
            u = st.users.get(uid)
            if u is None:
                self.body()
                return self.answer("keycloak", 404, {"error": "User not found"}, "no such user id")
            if len(segs) == 5 and m == "PUT":
                raw = self.body()
                if self.headers.get("Content-Type") != "application/json":
                    return self.answer("keycloak", 415, None, "PUT user: not JSON")
                rep = json.loads(raw)
                if not rep or set(rep) - {"requiredActions", "enabled"}:
                    return self.answer("keycloak", 400, None, f"PUT user: unexpected keys {sorted(rep)}", rep)
                with LOCK:
                    u.update(rep)
                return self.answer("keycloak", 204, None, None, rep)
            if len(segs) == 6 and segs[5] == "credentials" and m == "GET":
                creds = []
                if u.get("passwordCreated") is not None:
                    creds.append({"id": "cred-" + uid, "type": "password", "userLabel": "My password",
                                  "createdDate": u["passwordCreated"], "credentialData": "{}"})
                creds.append({"id": "otp-" + uid, "type": "otp", "createdDate": 4102444800000})
                return self.answer("keycloak", 200, creds)
            if len(segs) == 6 and segs[5] == "logout" and m == "POST":
                self.body()
                with LOCK:
                    u["logouts"] += 1
                return self.answer("keycloak", 204)
        # Graph
        if segs == [TENANT, "oauth2", "v2.0", "token"] and m == "POST":
            return self.token("graph", GRAPH_CLIENT, GRAPH_SCOPE)
        if segs[:2] == ["v1.0", "users"] and len(segs) >= 3:
            if not self.bearer("graph"):
                self.body()
                return self.answer("graph", 401, {"error": {"code": "InvalidAuthenticationToken"}}, "no valid bearer token")
            found = self.user_by("email", segs[2])
            if not found:
                self.body()
                return self.answer("graph", 404, {"error": {"code": "Request_ResourceNotFound"}}, "no such user")
            g = found[0]["graph"]
            if len(segs) == 4 and segs[3] == "revokeSignInSessions" and m == "POST":
                self.body()
                with LOCK:
                    g["revoked"] += 1
                return self.answer("graph", 200, {"value": True})
            if len(segs) == 3 and m == "PATCH":
                raw = self.body()
                if self.headers.get("Content-Type") != "application/json":
                    return self.answer("graph", 415, None, "PATCH user: not JSON")
                rep = json.loads(raw)
                if rep == {"accountEnabled": False}:
                    with LOCK:
                        g["accountEnabled"] = False
                elif rep == {"passwordProfile": {"forceChangePasswordNextSignIn": True}}:
                    with LOCK:
                        g["forceChange"] = True
                else:
                    return self.answer("graph", 400, None, f"PATCH user: unexpected body {rep}", rep)
                return self.answer("graph", 204, None, None, rep)
        # The SIEM's webhook: each event signed like the action webhook.
        if segs == ["siem"] and m == "POST":
            raw = self.body()
            expected = "sha256=" + hmac.new(st.hook_secret or b"", raw, hashlib.sha256).hexdigest()
            try:
                body = json.loads(raw)
            except ValueError:
                return self.answer("siem", 400, None, "not JSON")
            if not hmac.compare_digest(self.headers.get("X-Leakwatch-Signature") or "", expected):
                return self.answer("siem", 401, None, "bad signature", body)
            return self.answer("siem", 200, {"received": True}, None, body)
        # Webhook
        if segs == ["hook"] and m == "POST":
            raw = self.body()
            with LOCK:
                fail = st.hook_fail > 0
                if fail:
                    st.hook_fail -= 1
            try:
                body = json.loads(raw)
            except ValueError:
                return self.answer("webhook", 400, None, "not JSON")
            if fail:
                return self.answer("webhook", 503, None, "failing on purpose", body)
            expected = "sha256=" + hmac.new(st.hook_secret or b"", raw, hashlib.sha256).hexdigest()
            if self.headers.get("Content-Type") != "application/json":
                return self.answer("webhook", 415, None, "not application/json", body)
            if not hmac.compare_digest(self.headers.get("X-Leakwatch-Signature") or "", expected):
                return self.answer("webhook", 401, None, "bad signature", body)
            if self.headers.get("X-Leakwatch-Action") != str(body.get("action_id")):
                return self.answer("webhook", 400, None, "action header and body differ", body)
            return self.answer("webhook", 200, {"received": True}, None, body)
        self.body()
        return self.answer("unknown", 404, None, f"no such endpoint {m} {parts.path}")

    do_GET = route
    do_POST = route
    do_PUT = route
    do_PATCH = route


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--users")
    p.add_argument("--hook-secret")
    p.add_argument("--hook-fail", type=int, default=0)
    args = p.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    srv.state = State(args)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    print("READY", flush=True)
    sys.stdin.read()
    srv.shutdown()


if __name__ == "__main__":
    main()
