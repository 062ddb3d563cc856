"""Signs in to an Infernet server as a Lightning wallet would (LNURL-auth,
LUD-04), with a new secp256k1 linking key, and prints the session cookie
(`infernet_session=…`): what scripts/api-check.sh sends to the routes that
take a browser session.

    python scripts/lnurl_sign_in.py http://127.0.0.1:8080
"""

import json
import sys
import urllib.parse
import urllib.request

import ecdsa
from ecdsa.util import sigencode_der


def main(base: str) -> None:
    start = urllib.request.Request(base + "/api/v1/auth/lnurl", data=b"", method="POST")
    login = json.load(urllib.request.urlopen(start))
    k1 = login["id"]
    key = ecdsa.SigningKey.generate(curve=ecdsa.SECP256k1)
    sig = key.sign_digest_deterministic(bytes.fromhex(k1), sigencode=sigencode_der)
    query = urllib.parse.urlencode(
        {
            "tag": "login",
            "k1": k1,
            "sig": sig.hex(),
            "key": key.get_verifying_key().to_string("compressed").hex(),
        }
    )
    answer = json.load(urllib.request.urlopen(f"{base}/api/v1/auth/lnurl/callback?{query}"))
    if answer.get("status") != "OK":
        sys.exit(f"the server refused the signature: {answer}")
    poll = urllib.parse.urlencode({"poll": login["poll_token"]})
    collected = urllib.request.urlopen(f"{base}/api/v1/auth/lnurl/{k1}?{poll}")
    cookie = collected.headers.get("Set-Cookie", "").split(";")[0]
    if not cookie.startswith("infernet_session="):
        sys.exit(f"no session cookie: {json.load(collected)}")
    print(cookie)


if __name__ == "__main__":
    main(sys.argv[1].rstrip("/"))
