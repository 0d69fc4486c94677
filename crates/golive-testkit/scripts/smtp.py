# An SMTP server for golive's tests (Debian's python3-aiosmtpd): STARTTLS
# required, then AUTH PLAIN/LOGIN with one user, each message written to
# DIR as N.eml with N.json (envelope). Prints "ready PORT" when listening.
import asyncio, json, logging, os, ssl, sys
# aiosmtpd logs a deprecation of its own on every login
logging.getLogger("mail.log").setLevel(logging.ERROR)
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

port, directory, cert, key, user, password = sys.argv[1:7]
port = int(port)

class Store:
    def __init__(self):
        self.n = 0
    async def handle_DATA(self, server, session, envelope):
        self.n += 1
        base = os.path.join(directory, str(self.n))
        with open(base + ".eml", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        with open(base + ".json", "w") as f:
            json.dump({"from": envelope.mail_from, "to": envelope.rcpt_tos,
                       "tls": session.ssl is not None,
                       "user": user if session.authenticated else None}, f)
        return "250 OK"

def check(server, session, envelope, mechanism, data):
    if isinstance(data, LoginPassword) and data.login.decode() == user and data.password.decode() == password:
        return AuthResult(success=True)
    return AuthResult(success=False, handled=False)

ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(cert, key)
c = Controller(Store(), hostname="127.0.0.1", port=port, tls_context=ctx,
               require_starttls=True, auth_required=True, auth_require_tls=True,
               authenticator=check)
c.start()
print("ready", c.port, flush=True)
try:
    sys.stdin.read()
finally:
    c.stop()
