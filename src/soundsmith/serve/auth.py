"""Bearer tokens: with a token set, every /v1 route and /metrics answer 401 unless the request carries
`Authorization: Bearer <token>`, compared in constant time (hmac.compare_digest), so the time of a refusal says
nothing about how much of a guess was right."""

import hmac

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="soundsmith"'}


def bearer_ok(header: str | None, token: str) -> bool:
    """Whether an Authorization header value carries `token`."""
    scheme, _, given = (header or "").strip().partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode("utf-8", "replace"),
                                                              token.encode("utf-8"))
