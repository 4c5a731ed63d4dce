#!/usr/bin/env python3
"""A real SMTP server for the bgw tests, built on aiosmtpd.

Saves every message it accepts as DIR/<n>.eml (the raw bytes) and DIR/<n>.json
(subject, addresses, text and HTML parts decoded by Python's email package,
whether the session was TLS, who authenticated, when it arrived), and prints
`READY <port>` on stdout once it listens.

  smtp_sink.py --port 0 --dir DIR [--auth USER:PASS]
               [--tls-cert CERT --tls-key KEY (--implicit-tls | --starttls)]

With --auth, AUTH PLAIN/LOGIN is required before MAIL. With --starttls, STARTTLS
is required before anything else (and AUTH only after it). If DIR/.reject holds
an SMTP code (e.g. 451 or 550), every recipient is refused with that code, so
tests can check transient and permanent failures.
"""

import argparse
import asyncio
import email
import email.policy
import json
import os
import ssl
import sys
import time

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Sink:
    def __init__(self, directory):
        self.dir = directory
        self.count = 0

    def _reject_code(self):
        try:
            with open(os.path.join(self.dir, ".reject")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        code = self._reject_code()
        if code is not None:
            if 400 <= code < 500:
                return f"{code} 4.3.0 Try again later"
            return f"{code} 5.1.1 Mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        received = time.time()
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        msg = email.message_from_bytes(raw, policy=email.policy.default)

        def part(kind):
            body = msg.get_body(preferencelist=(kind,))
            return body.get_content() if body is not None else None

        tls = session.ssl is not None or (
            server.transport is not None
            and server.transport.get_extra_info("ssl_object") is not None
        )
        info = {
            "subject": str(msg.get("subject", "")),
            "from": str(msg.get("from", "")),
            "to": [a.addr_spec for a in msg.get("to").addresses] if msg.get("to") else [],
            "mail_from": envelope.mail_from,
            "rcpt_to": list(envelope.rcpt_tos),
            "message_id": str(msg.get("message-id", "")),
            "content_type": msg.get_content_type(),
            "text": part("plain"),
            "html": part("html"),
            "tls": bool(tls),
            "auth_user": session.auth_data if session.authenticated else None,
            "received_unix": received,
        }
        self.count += 1
        n = self.count
        for name, data in ((f"{n}.eml", raw), (f"{n}.json", json.dumps(info).encode())):
            tmp = os.path.join(self.dir, f".{name}.tmp")
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, os.path.join(self.dir, name))
        return "250 Message accepted for delivery"


def authenticator_for(user, password):
    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == user
            and auth_data.password.decode() == password
        )
        if ok:
            return AuthResult(success=True, auth_data=user)
        # handled=False: let aiosmtpd answer "535 Authentication failed".
        return AuthResult(success=False, handled=False)

    return authenticate


async def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--dir", required=True)
    p.add_argument("--auth", help="USER:PASS required before MAIL")
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--implicit-tls", action="store_true")
    mode.add_argument("--starttls", action="store_true")
    args = p.parse_args()

    os.makedirs(args.dir, exist_ok=True)
    context = None
    if args.implicit_tls or args.starttls:
        if not (args.tls_cert and args.tls_key):
            p.error("--implicit-tls/--starttls need --tls-cert and --tls-key")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.tls_cert, args.tls_key)

    kwargs = {"hostname": "bgw-smtp-sink", "ident": "bgw-smtp-sink"}
    if args.starttls:
        kwargs.update(tls_context=context, require_starttls=True)
    if args.auth:
        user, _, password = args.auth.partition(":")
        kwargs.update(
            authenticator=authenticator_for(user, password),
            auth_required=True,
            # STARTTLS sessions authenticate after the upgrade; plain ones are
            # allowed to (tests on loopback); implicit TLS is always encrypted.
            auth_require_tls=bool(args.starttls),
        )

    sink = Sink(args.dir)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(sink, **kwargs),
        host=args.host,
        port=args.port,
        ssl=context if args.implicit_tls else None,
    )
    port = server.sockets[0].getsockname()[1]
    print(f"READY {port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
