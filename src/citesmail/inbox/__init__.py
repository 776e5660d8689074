"""What comes back: bounces, complaint reports, unsubscribe requests and auto-replies,
read from a mailbox file or an IMAP folder (`citesmail inbox`), classified (classify.py),
acted on (act.py) and filed away (sources.py, imap.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..config import Settings
from ..db import Database
from ..tokens import DEVELOPMENT_SECRET
from ..verp import ReturnReader
from .act import InboxReport, process
from .classify import Classifier
from .imap import ImapSource
from .sources import open_source

__all__ = ["InboxReport", "classifier_for", "fetch", "import_path"]


def classifier_for(settings: Settings) -> Classifier:
    """Tokens are read with the secret that signed them (the links' and the return
    path's)."""
    return Classifier(settings.secret or DEVELOPMENT_SECRET, ReturnReader(settings))


def import_path(db: Database, settings: Settings, path: Path, *, dry_run: bool = False,
                progress: Callable[[int, int], None] | None = None) -> InboxReport:
    """`inbox import`: an mbox file, a Maildir folder or an .eml file."""
    source = open_source(path, settings.inbox.processed_folder)
    return process(db, source, classifier_for(settings), dry_run=dry_run, progress=progress)


def fetch(db: Database, settings: Settings, *, dry_run: bool = False,
          progress: Callable[[int, int], None] | None = None) -> InboxReport:
    """`inbox fetch`: the [inbox] IMAP folder."""
    with ImapSource(settings.inbox, settings.imap_password) as source:
        return process(db, source, classifier_for(settings), dry_run=dry_run,
                       progress=progress)
