#!/usr/bin/env python3
"""Seeds a running account-recovery server for bench/load/run, through its HTTP API only.

Standard library only. Subcommands (each writes its files into --out):

  seed        accounts for password login and reset (emails verified with the links the server
              mails to its log), accounts with TOTP on and a set of recovery codes each,
              recovery requests (half of them answered by support, so they carry a message),
              and the support user's access token (the support user itself is made with the CLI).
              Files: login_users.txt, target_user.txt, requests.txt (id token), support_token.txt, mfa_codes.txt.
  mfa-pairs   turns the recovery codes into (mfa token, code) pairs by one password login per
              code: pairs_warmup.txt and pairs_run.txt. mfa tokens live MFA_TOKEN_TTL (5 min by
              default): run it right before the recovery-code scenario. --part K --parts N uses
              only the K-th of N equal slices of the codes (one slice per measured run, since a
              code works once).
  tokens      logs in every seeded login account and the support user and writes their access
              tokens: access_tokens.txt (one per line) and support_token.txt. Access tokens live
              ACCESS_TOKEN_TTL (15 min by default): run it right before the scenarios that use
              them.

The server's mails go to its log (MAIL_TRANSPORT=log); --log is that file.
"""

import argparse
import base64
import concurrent.futures
import hashlib
import hmac
import json
import os
import re
import struct
import sys
import time
import urllib.error
import urllib.request

PASSWORD = "orbit lantern mosaic 42"


class Api:
    def __init__(self, base):
        self.base = base.rstrip("/")

    def call(self, method, path, body=None, token=None, headers=None, expect=(200,)):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", "Bearer " + token)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        # A 500 or 503 is retried a few times (said on stderr): on SQLite, a write can fail with
        # "database is locked" while the server drains the mail backlog an earlier write
        # scenario left behind. The data is made outside any measured run.
        for attempt in range(5):
            try:
                with urllib.request.urlopen(req, timeout=60) as res:
                    status, raw = res.status, res.read()
            except urllib.error.HTTPError as e:
                status, raw = e.code, e.read()
            if status not in (500, 503) or status in expect or attempt == 4:
                break
            print(f"setup.py: {method} {path}: {status}, trying again", file=sys.stderr, flush=True)
            time.sleep(1 + attempt)
        if status not in expect:
            raise RuntimeError(f"{method} {path}: {status} {raw[:300]!r}")
        return json.loads(raw) if raw else None


def totp(secret_b32, at=None):
    """RFC 6238: SHA-1, 6 digits, 30 s steps."""
    key = base64.b32decode(secret_b32.upper() + "=" * (-len(secret_b32) % 8))
    counter = int((time.time() if at is None else at) // 30)
    mac = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{value % 1_000_000:06d}"


MAIL = re.compile(r"----- mail \S+ to (\S+) -----\n(.*?)\n----- end of mail -----", re.S)


def links_in_log(log, page):
    """{recipient: last token} of the mailed `{FRONTEND_URL}/<page>?token=` links."""
    with open(log, encoding="utf-8", errors="replace") as f:
        text = f.read()
    found = {}
    link = re.compile(re.escape(page) + r"\?token=([A-Za-z0-9_\-]+)")
    for to, body in MAIL.findall(text):
        m = link.search(body)
        if m:
            found[to] = m.group(1)
    return found


def wait_for_links(log, page, recipients, timeout=120):
    deadline = time.time() + timeout
    while True:
        found = links_in_log(log, page)
        missing = [r for r in recipients if r not in found]
        if not missing:
            return found
        if time.time() > deadline:
            raise RuntimeError(f"no {page} mail for {len(missing)} addresses, e.g. {missing[0]}")
        time.sleep(0.5)


def pool(n):
    return concurrent.futures.ThreadPoolExecutor(max_workers=n)


def register(api, name):
    api.call(
        "POST",
        "/api/v1/accounts",
        {"username": name, "email": f"{name}@example.test", "password": PASSWORD},
        expect=(201,),
    )


def login(api, name):
    return api.call("POST", "/api/v1/sessions", {"login": name, "password": PASSWORD})


def enable_two_factor(api, name):
    """Registers `name`, turns TOTP on and returns its first set of recovery codes."""
    register(api, name)
    access = login(api, name)["access_token"]
    enrol = api.call("POST", "/api/v1/account/totp", {"password": PASSWORD}, token=access, expect=(201,))
    done = api.call("POST", "/api/v1/account/totp/confirm", {"code": totp(enrol["secret"])}, token=access)
    return [(name, code) for code in done["recovery_codes"]]


def seed(args):
    api = Api(args.base)
    os.makedirs(args.out, exist_ok=True)
    workers = args.workers
    t0 = time.time()

    users = [f"bench_login_{i:04d}" for i in range(args.login_accounts)]
    # The one account the wrong_passwords scenario guesses at (and locks), used by no other.
    target = "bench_target"
    with pool(workers) as p:
        list(p.map(lambda u: register(api, u), users + [target]))
    tokens = wait_for_links(
        args.log, "/verify-email", [f"{u}@example.test" for u in users + [target]]
    )
    with pool(workers) as p:
        list(
            p.map(
                lambda u: api.call(
                    "POST", "/api/v1/accounts/verify-email", {"token": tokens[f"{u}@example.test"]}
                ),
                users + [target],
            )
        )
    with open(os.path.join(args.out, "login_users.txt"), "w") as f:
        f.writelines(u + "\n" for u in users)
    with open(os.path.join(args.out, "target_user.txt"), "w") as f:
        f.write(target + "\n")
    print(f"seed: {len(users)} verified accounts ({time.time() - t0:.0f} s)", flush=True)

    t1 = time.time()
    names = [f"bench_mfa_{i:04d}" for i in range(args.mfa_accounts)]
    with pool(workers) as p:
        sets = list(p.map(lambda n: enable_two_factor(api, n), names))
    codes = [pair for s in sets for pair in s]
    with open(os.path.join(args.out, "mfa_codes.txt"), "w") as f:
        f.writelines(f"{n} {c}\n" for n, c in codes)
    print(f"seed: {len(names)} accounts with TOTP, {len(codes)} recovery codes ({time.time() - t1:.0f} s)", flush=True)

    t2 = time.time()
    support = api.call(
        "POST", "/api/v1/sessions", {"login": args.support_user, "password": args.support_password}
    )["access_token"]
    requests = []
    for i in range(args.requests):
        # Every other request names an existing account (an ownership mail goes to its address).
        username = users[i % len(users)] if i % 2 == 0 else f"nobody_{i:04d}"
        r = api.call(
            "POST",
            "/api/v1/recovery-requests",
            {
                "username": username,
                "contact_email": f"requester{i}@example.org",
                "reason": "I lost my phone with the authenticator app and never saved my codes.",
                "recovery_codes_lost": True,
                "code_of_conduct_accepted": True,
                "processing_time_acknowledged": True,
            },
            expect=(202,),
        )
        requests.append((r["id"], r["tracking_token"]))
    # Half of them get a message from support: they show one message and `needs_info`.
    for rid, _ in requests[::2]:
        api.call(
            "POST",
            f"/api/v1/admin/recovery-requests/{rid}/messages",
            {"body": "Could you tell us roughly when you created the account?"},
            token=support,
            expect=(201,),
        )
    with open(os.path.join(args.out, "requests.txt"), "w") as f:
        f.writelines(f"{i} {t}\n" for i, t in requests)
    with open(os.path.join(args.out, "support_token.txt"), "w") as f:
        f.write(support + "\n")
    print(f"seed: {len(requests)} recovery requests ({time.time() - t2:.0f} s)", flush=True)


def mfa_pairs(args):
    api = Api(args.base)
    with open(os.path.join(args.out, "mfa_codes.txt")) as f:
        codes = [line.split() for line in f if line.strip()]
    # The K-th of N contiguous slices (K from 1): each measured run gets codes of its own.
    size = len(codes) // args.parts
    codes = codes[(args.part - 1) * size : args.part * size]
    t0 = time.time()

    def pair(nc):
        name, code = nc
        r = login(api, name)
        if r.get("status") != "mfa_required":
            raise RuntimeError(f"{name}: expected mfa_required, got {r}")
        return f"{r['mfa_token']} {code}\n"

    # Made in the reverse of the order wrk sends them (warm-up first, then the run, each from the
    # top), so the pair sent first is the youngest and none is older at use than the time this
    # takes plus one run: on SQLite with a mail backlog draining, logins here can be slow.
    with pool(args.workers) as p:
        pairs = list(p.map(pair, codes[::-1]))[::-1]
    warm = min(args.warmup_pairs, len(pairs) // 4)
    with open(os.path.join(args.out, "pairs_warmup.txt"), "w") as f:
        f.writelines(pairs[:warm])
    with open(os.path.join(args.out, "pairs_run.txt"), "w") as f:
        f.writelines(pairs[warm:])
    print(
        f"mfa-pairs: {warm} warm-up and {len(pairs) - warm} measured (mfa token, code) pairs "
        f"({time.time() - t0:.0f} s)",
        flush=True,
    )


def tokens(args):
    api = Api(args.base)
    with open(os.path.join(args.out, "login_users.txt")) as f:
        users = [line.strip() for line in f if line.strip()]
    t0 = time.time()
    with pool(args.workers) as p:
        access = list(p.map(lambda u: login(api, u)["access_token"], users))
    support = api.call(
        "POST", "/api/v1/sessions", {"login": args.support_user, "password": args.support_password}
    )["access_token"]
    with open(os.path.join(args.out, "access_tokens.txt"), "w") as f:
        f.writelines(t + "\n" for t in access)
    with open(os.path.join(args.out, "support_token.txt"), "w") as f:
        f.write(support + "\n")
    print(f"tokens: {len(access)} account access tokens and the support user's ({time.time() - t0:.0f} s)", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["seed", "mfa-pairs", "tokens"])
    ap.add_argument("--base", required=True, help="http://127.0.0.1:PORT")
    ap.add_argument("--out", required=True, help="folder for the data files")
    ap.add_argument("--log", help="the server's log (mails are read from it)")
    ap.add_argument("--workers", type=int, default=4, help="parallel HTTP clients")
    ap.add_argument("--login-accounts", type=int, default=64)
    ap.add_argument("--mfa-accounts", type=int, default=100)
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--support-user", default="bench_support")
    ap.add_argument("--support-password", default=PASSWORD)
    ap.add_argument("--warmup-pairs", type=int, default=200)
    ap.add_argument("--part", type=int, default=1, help="mfa-pairs: which slice of the codes (from 1)")
    ap.add_argument("--parts", type=int, default=1, help="mfa-pairs: how many slices")
    args = ap.parse_args()
    if args.command == "seed":
        if not args.log:
            ap.error("seed needs --log")
        seed(args)
    elif args.command == "tokens":
        tokens(args)
    else:
        if not 1 <= args.part <= args.parts:
            ap.error("--part must be between 1 and --parts")
        mfa_pairs(args)


if __name__ == "__main__":
    try:
        main()
    except RuntimeError as e:
        print(f"setup.py: {e}", file=sys.stderr)
        sys.exit(1)
