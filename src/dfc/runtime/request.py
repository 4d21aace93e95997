"""Building an HTTP step's request from its plan node: substitution and validation
(SPEC §1.3 df.http / df.http_multipart, §5.2 HTTP). Sending it is `dfc.runtime.http`'s job."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping

from dfc.json_types import JSON
from dfc.plan.nodes import Http, HttpMultipart
from dfc.runtime.keys import idempotency_key
from dfc.runtime.state import HttpRequest
from dfc.runtime.substitute import (
    is_whole_reference,
    mentions_reference,
    raw_text,
    splice_expressions,
    substitute_raw,
)


class BadRequest(Exception):
    """The request cannot be built (headers or parts are not what they must be): the node fails
    before anything is sent."""


def build_request(
    config: Http | HttpMultipart,
    key: str,
    bindings: Mapping[str, JSON],
    variables: Mapping[str, str],
    *,
    instance_id: str,
    remaining: float | None,
) -> HttpRequest:
    """The fully substituted request of an HTTP or HTTP_MULTIPART node running at `key`.

    `remaining` is the time left before an enclosing df.timeout, which caps the request's own
    timeout. Raises `SubstitutionError` or `BadRequest`.
    """
    url = substitute_raw(config.url, bindings, variables)
    text = config.body if isinstance(config, Http) else None
    body = None if text is None else substitute_raw(text, bindings, variables)
    headers: dict[str, str] = {}
    if config.headers is not None:
        substituted = substitute_raw(config.headers, bindings, variables)
        try:
            parsed = json.loads(substituted) if substituted.strip() else {}
        except ValueError as e:
            raise BadRequest(f"the headers are not valid JSON after substitution: {e}") from None
        if not isinstance(parsed, dict):
            raise BadRequest("the headers must be a JSON object of names and values")
        headers = {str(k): v if isinstance(v, str) else raw_text(v) for k, v in parsed.items()}
    parts = None
    if isinstance(config, HttpMultipart):
        parts = _parts(config.parts, bindings, variables)
    timeout = float(config.timeout)
    if remaining is not None:
        timeout = min(timeout, remaining)
    return HttpRequest(
        url=url,
        method=config.method,
        body=body,
        headers=headers,
        timeout_s=timeout,
        idempotency_key=idempotency_key(instance_id, key),
        multipart=parts,
    )


def _parts(
    text: str, bindings: Mapping[str, JSON], variables: Mapping[str, str]
) -> tuple[dict[str, JSON], ...]:
    """Multipart parts: each text field substituted raw; ``data_b64`` must be exactly one
    reference or literal base64 (line-wrapped is fine), checked before anything is sent."""
    try:
        parsed = json.loads(splice_expressions(text, variables))
    except ValueError as e:
        raise BadRequest(f"the multipart parts are not valid JSON: {e}") from None
    if not isinstance(parsed, list):
        raise BadRequest("the multipart parts must be a JSON array of objects")
    parts = []
    for i, part in enumerate(parsed, 1):
        if not isinstance(part, dict) or not isinstance(part.get("name"), str):
            raise BadRequest(f"multipart part {i} must be an object with a text 'name'")
        data = part.get("data_b64", "")
        if not isinstance(data, str):
            raise BadRequest(f"multipart part {i}: 'data_b64' must be text")
        if mentions_reference(data, bindings) and not is_whole_reference(data):
            # Text around a reference can never make valid base64 of the value: refuse early.
            raise BadRequest(
                f"multipart part {i}: 'data_b64' mixes a reference with other text; it must be "
                "exactly one reference or literal base64"
            )
        data = "".join(substitute_raw(data, bindings, variables).split())
        try:
            base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest(f"multipart part {i}: 'data_b64' is not valid base64") from None
        out: dict[str, JSON] = {"data_b64": data}
        for field_name in ("name", "filename", "content_type"):
            value = part.get(field_name)
            if value is not None:
                out[field_name] = substitute_raw(str(value), bindings, variables)
        parts.append(out)
    return tuple(parts)
