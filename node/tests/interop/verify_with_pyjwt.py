"""Verifies a Warrant access token with PyJWT, an implementation Warrant does not use, given only
the node's published JWKS. Prints the verified claims as JSON; exits non-zero if verification fails.

usage: verify_with_pyjwt.py JWKS_FILE TOKEN_FILE AUDIENCE ISSUER
"""

import json
import sys

import jwt


def main() -> int:
    jwks_path, token_path, audience, issuer = sys.argv[1:5]
    with open(jwks_path, encoding="utf-8") as f:
        jwks = jwt.PyJWKSet.from_json(f.read())
    with open(token_path, encoding="utf-8") as f:
        token = f.read().strip()
    header = jwt.get_unverified_header(token)
    matching = [key for key in jwks.keys if key.key_id == header.get("kid")]
    if len(matching) != 1:
        print(f"kid {header.get('kid')!r} not found exactly once in the JWKS", file=sys.stderr)
        return 2
    try:
        claims = jwt.decode(
            token,
            matching[0].key,
            algorithms=["EdDSA"],
            audience=audience,
            issuer=issuer,
            options={"require": ["exp", "iat", "iss", "sub", "aud", "jti"]},
        )
    except jwt.PyJWTError as error:
        print(f"verification failed: {error}", file=sys.stderr)
        return 1
    print(json.dumps({"typ": header.get("typ"), "claims": claims}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
