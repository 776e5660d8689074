"""The states a contact, a send and a send's row can be in: one definition each.

StrEnums: each member is the very string stored in the database, so a member compares
equal to the stored value and goes into SQL as it is.
"""

from __future__ import annotations

from enum import StrEnum


class ContactStatus(StrEnum):
    ACTIVE = "active"  # mailed by campaigns
    PENDING = "pending"  # signed up, not confirmed: never mailed by a campaign, purged later
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"  # a permanent failure named this address
    COMPLAINED = "complained"


class ConsentKind(StrEnum):
    """What a consent event (`consent_events` row) records."""

    IMPORT = "import"  # a row of an imported file
    FORM_SIGNUP = "form_signup"  # a sign-up form sent (the contact is pending)
    CONFIRMATION = "confirmation"  # the sign-up confirmed by the link in its email
    RESUBSCRIPTION = "resubscription"  # a person who had left came back (confirmed)
    LIST_SUBSCRIBE = "list_subscribe"  # joined a public list on the preference page
    LIST_UNSUBSCRIBE = "list_unsubscribe"  # left one list
    UNSUBSCRIBE = "unsubscribe"  # left everything
    COMPLAINT = "complaint"  # marked a message as spam
    BOUNCE = "bounce"  # a permanent failure named the address
    MANUAL = "manual"  # added or changed by hand (citesmail contacts add / edit)
    # Consent to measurement ([tracking] individual), apart from consent to be mailed:
    # neither kind is in GRANTS.
    MEASUREMENT_ASKED = "measurement_asked"  # ticked on a sign-up form: given at confirmation
    MEASUREMENT_GIVEN = "measurement_given"
    MEASUREMENT_WITHDRAWN = "measurement_withdrawn"


# The events by which a person gives consent: the latest one is the contact's consent.
GRANTS = frozenset({ConsentKind.IMPORT, ConsentKind.FORM_SIGNUP, ConsentKind.CONFIRMATION,
                    ConsentKind.RESUBSCRIPTION, ConsentKind.LIST_SUBSCRIBE,
                    ConsentKind.MANUAL})


class OutgoingKind(StrEnum):
    """What an `outgoing_mail` row asks a person to confirm."""

    SIGNUP = "signup"  # a sign-up form sent
    RESUBSCRIBE = "resubscribe"  # `contacts resubscribe`


class OutgoingState(StrEnum):
    """An `outgoing_mail` row: queued -> sent, or failed (refused for good)."""

    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"


class SendState(StrEnum):
    """A campaign's send (the `sends` row): scheduled -> running -> done, or missed."""

    SCHEDULED = "scheduled"  # stored, waiting for its time (citesmail worker)
    MISSED = "missed"  # its time passed while no worker ran: never sent late
    RUNNING = "running"  # recipients snapshotted; rows still to settle
    DONE = "done"  # every row settled


class Publication(StrEnum):
    """How a campaign stands on the published site (`citesmail publish`, serve's /archive/)."""

    SENT = "sent"  # its send has started (running or done)
    SCHEDULED = "scheduled"  # its send waits for its time
    DRAFT = "draft"  # no send yet: published only with --drafts, marked as such


class DeliveryState(StrEnum):
    """One recipient's row in a send (`deliveries`): see delivery/__init__.py."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DEFERRED = "deferred"
    FAILED = "failed"
    SKIPPED = "skipped"
    UNKNOWN = "unknown"


# A send not yet started: it may still be changed or cancelled.
NOT_STARTED = frozenset({SendState.SCHEDULED, SendState.MISSED})
# Rows that no longer need the run.
SETTLED = (DeliveryState.SENT, DeliveryState.FAILED, DeliveryState.SKIPPED,
           DeliveryState.UNKNOWN)


class CampaignStage(StrEnum):
    """Where a campaign stands, as the studio shows it (not stored: read from its send)."""

    DRAFT = "draft"  # no send yet
    SCHEDULED = "scheduled"
    MISSED = "missed"
    SENDING = "sending"
    SENT = "sent"

# The start of `deliveries.last_error` for a message failed by a bounce report that came
# back after the server had accepted it (delivery/bounces.py writes it; reports read it).
BOUNCE_REPORT_PREFIX = "bounce report: "
