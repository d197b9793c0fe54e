"""The sign-in service (cloud/contracts/auth.py): challenges stored for single use, tokens
issued to a did the contracts know (a regulator, or an active participant: its role goes
into the token) or that holds a replay grant (role "replayer"), and bearer tokens read from
requests. Raises LedgerError (cloud/services/refusals.py): 400 malformed, 401 not
authenticated, 403 not a participant.
"""

from __future__ import annotations

import logging
import os
import time

from cloud.contracts import auth, didkey, participants
from cloud.contracts.engine import Forbidden
from cloud.services.config import ConfigService
from cloud.services.contracts import ContractService
from cloud.services.shared import Shared
from gateway.refusal import Refused, hex_field

log = logging.getLogger("pharmasync.cloud.ledger.auth")

REPLAYER = "replayer"  # the role of a token whose did holds only a replay grant


class AuthService:
    """Challenges, tokens and bearers over one Store and the contracts' state."""

    def __init__(self, shared: Shared, contracts: ContractService, config: ConfigService) -> None:
        self.shared = shared
        self.contracts = contracts
        self.config = config
        self._secret: bytes | None = None

    async def _key(self) -> bytes:
        if self._secret is None:
            self._secret = await self.shared.store.auth_secret()
        return self._secret

    async def challenge(self, now: int | None = None) -> tuple[bytes, int]:
        """A fresh random challenge and when it expires (Unix s)."""
        now = int(time.time()) if now is None else now
        challenge = os.urandom(auth.CHALLENGE_BYTES)
        expires = now + auth.CHALLENGE_TTL_S
        await self.shared.store.add_challenge(challenge, expires, now)
        return challenge, expires

    async def token(self, body: object, now: int | None = None) -> tuple[str, auth.Token]:
        """Check {did, challenge, sig} and return a bearer token and what it names.
        Raises LedgerError: 400 "request"/"did"/"challenge"/"sig" malformed, 401 "sig"
        (does not verify) or "challenge" (unknown, expired or used), 403 "participant" (no
        regulator, participant or replay grant)."""
        now = int(time.time()) if now is None else now
        try:
            if not isinstance(body, dict) or set(body) != {"did", "challenge", "sig"}:
                raise auth.AuthError("request", 'want {"did", "challenge", "sig"}')
            did = body["did"]
            if not isinstance(did, str) or len(did) > 200:
                raise auth.AuthError("did", "want a did:key string")
            try:
                xonly = didkey.to_xonly(did)
            except didkey.DidKeyError as e:
                raise auth.AuthError("did", e.detail) from None
            challenge = hex_field(
                body["challenge"], "challenge", auth.CHALLENGE_BYTES, auth.AuthError
            )
            sig = hex_field(body["sig"], "sig", 64, auth.AuthError)
            auth.check_signature(xonly, challenge, did, sig)
            if not await self.shared.store.use_challenge(challenge, now):
                raise auth.AuthError("challenge", "unknown, expired or used: ask for another", 401)
            role = await self._role(did, xonly)
        except Refused as e:
            raise self.shared.refusals.of(e) from None
        token = auth.Token(did, role, now + auth.TOKEN_TTL_S)
        log.info("auth: %s signed in as %s", did[:24], role)
        return auth.issue(await self._key(), token), token

    async def _role(self, did: str, xonly: bytes) -> str:
        """The role `did` signs in with: a regulator's or an active participant's, else
        REPLAYER if it holds a replay grant (an auditor the regulator appointed). Raises
        Forbidden "participant" (not admitted, suspended, rotated) otherwise."""
        await self.contracts.load()
        try:
            return participants.identify(self.contracts.state, did).role
        except Forbidden:
            authority = await self.config.authority(await self.shared.store.log_size())
            if any(key == xonly for key, _ in authority.grants):
                return REPLAYER
            raise

    async def bearer(self, header: str | None, now: int | None = None) -> auth.Token | None:
        """The token an Authorization header carries (None without one: the public).
        Raises LedgerError 401 "token" for another scheme or a bad, forged or expired one."""
        if header is None:
            return None
        now = int(time.time()) if now is None else now
        try:
            scheme, _, text = header.partition(" ")
            if scheme.lower() != "bearer":
                raise auth.AuthError("token", "want Authorization: Bearer <token>", 401)
            return auth.open_token(await self._key(), text.strip(), now)
        except Refused as e:
            raise self.shared.refusals.of(e) from None
