"""VERP: each message's envelope sender names its contact and send, so that a bounce
says whom it is about even when it quotes nothing of the message.

`[delivery] return_path = "bounces+{token}@example.org"` gives the shape; `{token}` is
a signed token (tokens.make_return_token). Without it, the envelope sender is the From
address. The receiving server writes the Return-Path header from the envelope: citesmail
never writes one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import getaddresses, parseaddr

from .config import RETURN_TOKEN, Settings
from .tokens import DEVELOPMENT_SECRET, make_return_token, read_return_token

TEST_SEND = 0  # the send id of test messages (no send log)


@dataclass(frozen=True)
class Returned:
    """What a valid return-path token names."""

    contact_id: int
    send_id: int


class ReturnPath:
    """The envelope sender (MAIL FROM) of each message."""

    def __init__(self, settings: Settings) -> None:
        self.pattern = settings.delivery.return_path
        self.secret = settings.secret or DEVELOPMENT_SECRET
        self.from_address = parseaddr(settings.sender.from_)[1]

    def sender(self, contact_id: int, send_id: int) -> str:
        """The return path with this message's token, else the From address."""
        if not self.pattern:
            return self.from_address
        token = make_return_token(self.secret, contact_id, send_id)
        return self.pattern.replace(RETURN_TOKEN, token)


class ReturnReader:
    """Finds a valid token in addresses of the configured return-path shape."""

    def __init__(self, settings: Settings) -> None:
        self.secret = settings.secret or DEVELOPMENT_SECRET
        pattern = settings.delivery.return_path.lower()
        before, _, after = pattern.partition(RETURN_TOKEN)
        self.shape = re.compile(re.escape(before) + r"([0-9a-z-]+)" + re.escape(after)) \
            if pattern else None

    def read(self, address: str) -> Returned | None:
        if self.shape is None:
            return None
        found = self.shape.fullmatch(address.strip().strip("<>").lower())
        if found is None:
            return None
        named = read_return_token(self.secret, found[1])
        return Returned(*named) if named is not None else None

    def in_headers(self, values: list[str]) -> Returned | None:
        """The first valid token among header values (To, Delivered-To, ...)."""
        for _name, address in getaddresses(values):
            returned = self.read(address)
            if returned is not None:
                return returned
        return None
