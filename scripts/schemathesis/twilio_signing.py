"""Schemathesis hook: signs every request to POST /twilio/sms the way Twilio does.

X-Twilio-Signature = base64(HMAC-SHA1(TWILIO_AUTH_TOKEN, PUBLIC_BASE_URL + path + the sorted
form parameters, name then value)). With it, a run against a `serve` that has
TWILIO_AUTH_TOKEN set reaches the webhook's checks past the signature (required fields,
the store) instead of stopping at 403. Used by BENCHMARKS.md ("Fuzzing and schemathesis"):

    SCHEMATHESIS_HOOKS=twilio_signing PYTHONPATH=scripts/schemathesis \
    TWILIO_AUTH_TOKEN=... PUBLIC_BASE_URL=http://127.0.0.1:5012 schemathesis run ...
"""

import base64
import hashlib
import hmac
import os
from urllib.parse import parse_qsl

import schemathesis

TOKEN = os.environ["TWILIO_AUTH_TOKEN"]
PUBLIC_BASE_URL = os.environ["PUBLIC_BASE_URL"].rstrip("/")


def signature(url: str, params: list[tuple[str, str]]) -> str:
    mac = hmac.new(TOKEN.encode(), url.encode(), hashlib.sha1)
    for name, value in sorted(params):
        mac.update(name.encode())
        mac.update(value.encode())
    return base64.b64encode(mac.digest()).decode()


def sent_params(case) -> list[tuple[str, str]]:
    """The form as requests encodes a dict body: None dropped, lists repeated, str() else."""
    if isinstance(case.body, (str, bytes)):
        text = case.body.decode("utf-8", "replace") if isinstance(case.body, bytes) else case.body
        return parse_qsl(text, keep_blank_values=True)
    body = case.body if isinstance(case.body, dict) else {}
    out = []
    for name, value in body.items():
        for v in value if isinstance(value, list) else [value]:
            if v is not None:
                out.append((str(name), str(v)))
    return out


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    if case.operation.path != "/twilio/sms":
        return
    path = case.formatted_path
    url = PUBLIC_BASE_URL + path
    sig = signature(url, sent_params(case))
    if case.headers is None:
        case.headers = {}
    case.headers["X-Twilio-Signature"] = sig
    headers = kwargs.get("headers")
    if isinstance(headers, dict):
        headers["X-Twilio-Signature"] = sig
