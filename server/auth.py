"""Bearer tokens for the write API.

The service never sees a token in its configuration, only ``sha256:<hex>`` hashes (from
``TWIN_WRITE_TOKENS``, comma-separated, and/or a secret file ``TWIN_WRITE_TOKENS_FILE``, one per
line, ``#`` comments allowed); ``twin token`` makes a new token and its hash. A request's token
is hashed and compared with every configured hash in constant time, so neither the timing nor
the configuration gives a token away.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from twin.errors import TwinError

HASH_PREFIX = "sha256:"
TOKEN_BYTES = 32
"""Random bytes in a new token (256 bits, URL-safe base64: 43 characters)."""
_HASH = re.compile(r"^sha256:[0-9a-f]{64}$")


class TokenConfigError(TwinError, ValueError):
    """A configured token hash is malformed or its file cannot be read."""


def new_token() -> str:
    """A fresh random bearer token."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    """The ``sha256:<hex>`` form of a token, as it goes into the settings."""
    return HASH_PREFIX + hashlib.sha256(token.encode("utf-8")).hexdigest()


def _parse_hash(text: str, place: str) -> bytes:
    value = text.strip().lower()
    if not _HASH.match(value):
        shown = value if len(value) <= 80 else value[:77] + "..."
        raise TokenConfigError(
            f"{place}: {shown!r} is not a token hash; expected sha256:<64 hex digits> as "
            "printed by `twin token` (never the token itself)"
        )
    return bytes.fromhex(value[len(HASH_PREFIX):])


@dataclass(frozen=True)
class WriteTokens:
    """The SHA-256 digests of the tokens allowed to write."""

    digests: tuple[bytes, ...]

    @classmethod
    def parse(cls, write_tokens: str = "", write_tokens_file: Path | None = None) -> WriteTokens:
        """Read the hashes from the settings' string and secret file (blocking: reads a file).

        Raises TokenConfigError naming the setting or file line that is wrong.
        """
        digests: list[bytes] = []
        for number, entry in enumerate(write_tokens.split(","), start=1):
            if entry.strip():
                digests.append(_parse_hash(entry, f"TWIN_WRITE_TOKENS entry {number}"))
        if write_tokens_file is not None:
            try:
                text = Path(write_tokens_file).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise TokenConfigError(
                    f"{write_tokens_file}: cannot read the write-token file ({exc}); fix "
                    "TWIN_WRITE_TOKENS_FILE or the file's permissions"
                ) from exc
            for number, line in enumerate(text.splitlines(), start=1):
                content = line.split("#", 1)[0]
                if content.strip():
                    digests.append(_parse_hash(content, f"{write_tokens_file}:{number}"))
        return cls(tuple(dict.fromkeys(digests)))

    @classmethod
    def of(cls, hashes: Iterable[str]) -> WriteTokens:
        """From ``sha256:<hex>`` strings (tests, tools)."""
        return cls(tuple(_parse_hash(text, "token hash") for text in hashes))

    def __len__(self) -> int:
        return len(self.digests)

    def accepts(self, token: str) -> bool:
        """Whether the token's hash is configured; compares with every hash in constant time."""
        presented = hashlib.sha256(token.encode("utf-8")).digest()
        accepted = False
        for digest in self.digests:
            accepted |= hmac.compare_digest(presented, digest)
        return accepted

    def fingerprint(self, token: str) -> str:
        """A short, non-secret name of a token for logs: the start of its hash."""
        return hashlib.sha256(token.encode("utf-8")).hexdigest()[:12]


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (RFC 6750), else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        return None
    return token
