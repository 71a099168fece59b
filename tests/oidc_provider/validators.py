"""The provider's validator: the user's claims, and a switch to misbehave on purpose."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from oauth2_provider.oauth2_validators import OAuth2Validator

# What the next ID tokens get wrong: "" (nothing), "wrong_nonce", "expired",
# "wrong_audience", "wrong_issuer", "bad_signature". Set through POST /test/misbehave/ (tests only).
MODE = {"value": ""}
# Claims the tests give a user: {"username": {"groups": [...], "amr": [...]}}.
EXTRA_CLAIMS: dict[str, dict[str, Any]] = {}


class MisbehavingValidator(OAuth2Validator):
    """django-oauth-toolkit's validator with the claims of a user the tests describe."""

    oidc_claim_scope = None  # every claim, whatever the scope

    def get_additional_claims(self, request: Any) -> dict[str, Any]:
        user = request.user
        claims = {
            "sub": f"sub-{user.username}",
            "email": user.email,
            "preferred_username": user.username,
        }
        claims.update(EXTRA_CLAIMS.get(user.username, {}))
        return claims

    def get_id_token_dictionary(self, token: Any, token_handler: Any, request: Any) -> Any:
        claims, expiration = super().get_id_token_dictionary(token, token_handler, request)
        mode = MODE["value"]
        if mode == "wrong_nonce":
            claims["nonce"] = "not-the-nonce-of-this-sign-in"
        elif mode == "expired":
            claims["exp"] = int(time.time()) - 3600
            claims["iat"] = int(time.time()) - 7200
        elif mode == "wrong_audience":
            claims["aud"] = "some-other-client"
        elif mode == "wrong_issuer":
            claims["iss"] = "http://127.0.0.1:1/not-the-provider"
        return claims, expiration

    def finalize_id_token(self, id_token: Any, token: Any, token_handler: Any, request: Any) -> str:
        signed = super().finalize_id_token(id_token, token, token_handler, request)
        if MODE["value"] != "bad_signature":
            return signed
        # Claims altered after signing: the signature no longer covers them.
        header, payload, signature = signed.split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        claims["sub"] = "sub-admin"
        forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
        return f"{header}.{forged}.{signature}"
