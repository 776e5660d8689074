"""Which clicks were likely made by a machine, told at the door (the applier also counts
as automated a click within seconds of the message's delivery: tracking/counts.py).

- HEAD requests: a person's browser asks with GET; link checkers and previews ask HEAD.
- Known scanners' user agents (SCANNERS, matched case-insensitively as substrings): mail
  security gateways and link-preview bots that follow links by themselves.
- Every link at once: the same client following several links of one campaign within
  BURST seconds. Clients are told apart by a keyed hash of their address, held in memory
  for those seconds only and never stored.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time

SCANNERS = (
    "barracuda", "mimecast", "proofpoint", "safelinks", "symantec", "trendmicro",
    "forcepoint", "sophos", "fortiguard", "cisco", "ironport", "bitdefender",
    "googleimageproxy", "slackbot", "twitterbot", "facebookexternalhit", "linkedinbot",
    "whatsapp", "telegrambot", "discordbot", "skypeuripreview", "bingpreview",
    "python-requests", "python-httpx", "curl/", "wget/", "go-http-client", "okhttp",
    "headlesschrome", "phantomjs", "bot", "crawler", "spider", "scanner",
)
BURST = 2.0  # seconds


def scanner_agent(user_agent: str) -> bool:
    """A user agent that names a known scanner, or none at all."""
    agent = user_agent.lower()
    return not agent or any(name in agent for name in SCANNERS)


class BurstWindow:
    """Clients that follow several links of one campaign within BURST seconds."""

    def __init__(self, seconds: float = BURST) -> None:
        self.seconds = seconds
        self._key = secrets.token_bytes(16)  # new each run: the hashes mean nothing later
        self._lock = threading.Lock()
        self._recent: dict[tuple[bytes, str], list[tuple[float, int]]] = {}
        self._swept = 0.0

    def _client(self, address: str) -> bytes:
        return hashlib.blake2b(address.encode("utf-8"), key=self._key,
                               digest_size=12).digest()

    def another_link(self, address: str, campaign: str, number: int,
                     now: float | None = None) -> bool:
        """Note this click; True when the same client followed another link of the same
        campaign within the window."""
        moment = time.monotonic() if now is None else now
        key = (self._client(address), campaign)
        with self._lock:
            if moment - self._swept > self.seconds:  # forget every client gone quiet
                self._recent = {k: v for k, v in self._recent.items()
                                if moment - v[-1][0] <= self.seconds}
                self._swept = moment
            recent = [(at, n) for at, n in self._recent.get(key, ())
                      if moment - at <= self.seconds]
            burst = any(n != number for _, n in recent)
            self._recent[key] = [*recent[-20:], (moment, number)]
        return burst
