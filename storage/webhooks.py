"""Outgoing webhooks (the paging or messaging system of critical results): one signed JSON
POST, success only on a 2xx answer."""

from __future__ import annotations

import json
from collections.abc import Mapping

import requests

from core.critical_results import SIGNATURE_HEADER, sign_payload

TIMEOUT = (5.0, 10.0)  # connect, read


class WebhookError(Exception):
    """The receiver did not take the message: unreachable, too slow, or not a 2xx."""


def post_webhook(url: str, payload: Mapping[str, object], secret: str) -> None:
    body = json.dumps(payload, sort_keys=True).encode()
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign_payload(secret, body)}
    try:
        answer = requests.post(
            url, data=body, headers=headers, timeout=TIMEOUT, allow_redirects=False
        )
    except requests.Timeout:
        raise WebhookError("the webhook did not answer in time") from None
    except requests.RequestException as error:
        raise WebhookError(f"the webhook is unreachable ({type(error).__name__})") from None
    answer.close()
    if not 200 <= answer.status_code < 300:
        raise WebhookError(f"the webhook answered HTTP {answer.status_code}")
