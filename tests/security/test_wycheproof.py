"""Wycheproof JWS and JWK vectors through the exchange's own JWS layer and JWKS ingestion.

Every `invalid` vector is refused; every `valid` one is accepted exactly when its algorithm is
on the issuers' default allow-list and its `kid` has the accepted form (the exchange's header
rules), and refused otherwise. Symmetric and private key material is never ingested. The
vectors are Google's Wycheproof (Apache 2.0, see vectors/wycheproof/LICENSE).
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from issuers.jwks import KID_PATTERN
from issuers.models import DEFAULT_ALGORITHMS
from tests.security.reporting import record_summary
from tests.security.wycheproof import ACCEPTED, Outcome, Vector, as_jwks, ingest, load_vectors
from tests.security.wycheproof import verify_jws as run

JWS_VECTORS = load_vectors("json_web_signature_test.json")
JWK_VECTORS = load_vectors("json_web_key_test.json")

# What JWKS ingestion makes of each JWK vector's published key set (its public keys when the
# group has them, else all it has). Symmetric keys are never ingested, whatever the vector says.
JWK_INGESTION = {
    1: "jwks:symmetric_key",  # a mixed HS256 + ES256 set
    2: "jwks:symmetric_key",  # two HS256 keys (valid for Wycheproof; HS* is never ours)
    3: "jwks:symmetric_key",
    4: "jwks:symmetric_key",  # duplicate kid, both HS256
    5: ACCEPTED,  # RS256 public key
    6: "jwks:not_signing_key",  # use "enc"
    7: "jwks:weak_key",  # the ROCA fingerprint
    8: "jwks:weak_key",  # 1024-bit RSA
    9: "jwks:invalid_key",  # public exponent 1
    **dict.fromkeys(range(10, 19), "jwks:symmetric_key"),  # short, long and empty HS keys
    19: "jwks:bad_alg",  # alg ES521 on a P-256 key
    20: "jwks:bad_alg",  # alg ES224
    21: "jwks:not_signing_key",  # use "enc"
    22: "jwks:invalid_key",  # a point not on the curve
    23: "jwks:bad_alg",  # ES256 declared on a P-384 key
    24: "jwks:bad_alg",  # kty RSA with EC members
    25: "jwks:symmetric_key",  # an AES-GCM key
    26: "jwks:symmetric_key",  # an AES key-wrap key
}


TALLY: Counter[tuple[str, str, str]] = Counter()  # (file, expected result, outcome)


@pytest.fixture(scope="module")
def tally() -> Iterator[Counter[tuple[str, str, str]]]:
    """Counts each vector's outcome; the run's summary shows them."""
    yield TALLY
    for name, lines in summary(TALLY).items():
        record_summary(f"Wycheproof {name}", lines)


def summary(counts: Counter[tuple[str, str, str]]) -> dict[str, list[str]]:
    """Per vector file: total, valid and invalid, accepted, refused, and refusals by reason."""
    lines: dict[str, list[str]] = {}
    for name in sorted({file for file, _, _ in counts}):
        rows = {key: n for key, n in counts.items() if key[0] == name}
        total = sum(rows.values())
        by_result = Counter[str]()
        by_reason = Counter[str]()
        for (_, result, reason), n in rows.items():
            by_result[result] += n
            by_reason[reason] += n
        accepted = by_reason.pop(ACCEPTED, 0)
        reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(by_reason.items()))
        lines[name] = [
            f"{total} vectors ({by_result['valid']} valid, {by_result['invalid']} invalid): "
            f"{accepted} accepted, {total - accepted} refused",
            f"refused by reason: {reasons}",
        ]
    return lines


def lenient_header(jws: str) -> dict[str, Any]:
    """The header as a lenient decoder reads it (only to say what the vector expects)."""
    try:
        segment = jws.split(".")[0]
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except ValueError:
        return {}
    return header if isinstance(header, dict) else {}


def acceptable_to_us(vector: Vector) -> bool:
    """A valid vector is ours to accept when its alg is allow-listed and its kid of our form."""
    header = lenient_header(vector.jws)
    kid = header.get("kid")
    return (
        vector.result == "valid"
        and header.get("alg") in DEFAULT_ALGORITHMS
        and isinstance(kid, str)
        and KID_PATTERN.match(kid) is not None
    )


def params(vectors: list[Vector]) -> list[Any]:
    return [pytest.param(vector, id=vector.id) for vector in vectors]


@pytest.mark.parametrize("vector", params(JWS_VECTORS))
def test_json_web_signature(vector: Vector, tally: Counter[tuple[str, str, str]]) -> None:
    outcome = run(vector.jws, vector.published)
    tally[(vector.file, vector.result, outcome.reason)] += 1
    if vector.result == "invalid":
        assert not outcome.accepted, f"{vector.group}: an invalid JWS was accepted"
    else:
        assert vector.result == "valid"
        assert outcome.accepted == acceptable_to_us(vector), (vector.group, outcome.reason)


@pytest.mark.parametrize("vector", params(JWK_VECTORS))
def test_json_web_key(vector: Vector, tally: Counter[tuple[str, str, str]]) -> None:
    assert ingest(vector.published) == Outcome(JWK_INGESTION[vector.tc_id])
    # The private half is never ingested either (private members, or symmetric key material).
    assert ingest(as_jwks(vector.private)).reason in {"jwks:private_key", "jwks:symmetric_key"}
    outcome = run(vector.jws, vector.published)
    tally[(vector.file, vector.result, outcome.reason)] += 1
    expected = acceptable_to_us(vector) and JWK_INGESTION[vector.tc_id] == ACCEPTED
    assert outcome.accepted == expected, (vector.group, outcome.reason)


def test_no_private_key_of_a_signature_group_is_ingested() -> None:
    """Each JWS group's private key (RSA/EC private members, or an HMAC secret) is refused."""
    for vector in {json.dumps(v.private, sort_keys=True): v for v in JWS_VECTORS}.values():
        reason = ingest(as_jwks(vector.private)).reason
        assert reason in {"jwks:private_key", "jwks:symmetric_key"}, vector.id


def test_the_valid_vectors_we_accept_cover_every_asymmetric_default_family() -> None:
    """The table above can fail: real valid signatures of RSA, PSS and EC keys verify."""
    algorithms = {
        lenient_header(v.jws)["alg"]
        for v in JWS_VECTORS
        if acceptable_to_us(v) and run(v.jws, v.published).accepted
    }
    assert {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256"} <= algorithms
