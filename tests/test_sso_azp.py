"""An ID token with several audiences must name this portal as its authorized party
(OpenID Connect Core 1.0, section 3.1.3.7, items 4-5). The token is signed for real with
a fresh RSA key; the test provider (django-oauth-toolkit) cannot issue such a token."""

from __future__ import annotations

import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from accounts.oidc import PortalOIDCBackend, SSORefused

ISSUER = "https://idp.example.org"
CLIENT = "securefiles-test"


@pytest.fixture
def backend(settings) -> PortalOIDCBackend:
    settings.OIDC_RP_CLIENT_ID = CLIENT
    settings.OIDC_RP_CLIENT_SECRET = "test-secret"  # noqa: S105
    settings.OIDC_OP_ISSUER = ISSUER
    settings.OIDC_RP_SIGN_ALGO = "RS256"
    settings.OIDC_OP_TOKEN_ENDPOINT = f"{ISSUER}/token/"
    settings.OIDC_OP_USER_ENDPOINT = f"{ISSUER}/userinfo/"
    settings.OIDC_OP_JWKS_ENDPOINT = f"{ISSUER}/jwks/"
    return PortalOIDCBackend()


def _signed(key: rsa.RSAPrivateKey, **claims: object) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "sub": "sub-dora", "iat": now, "exp": now + 300, **claims}
    return jwt.encode(body, key, algorithm="RS256")


@pytest.mark.parametrize(
    ("aud", "azp", "accepted"),
    [
        (CLIENT, None, True),
        ([CLIENT, "other"], CLIENT, True),
        ([CLIENT, "other"], "other", False),
        ([CLIENT, "other"], None, False),
        (["other"], "other", False),
    ],
)
def test_several_audiences_need_this_portal_as_azp(backend, aud, azp, accepted) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    claims = {"aud": aud} if azp is None else {"aud": aud, "azp": azp}
    token = _signed(key, **claims)

    if accepted:
        assert backend._verify_jws(token, key.public_key())["sub"] == "sub-dora"
    else:
        with pytest.raises(SSORefused):
            backend._verify_jws(token, key.public_key())
