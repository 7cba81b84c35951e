"""The log as one reader of the event feed sees it, page by page, each event in CloudEvents 1.0 form.

The API's feed (api/feed.py) and the webhook deliveries (activities/webhooks.py) both read through `FeedReader`,
so a subscription's deliveries are exactly what the feed shows its role: a lab its own tests' orders,
cancellations and collections, a partner the referrals disclosed to it (`domain.feed`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from continuum.domain.codec import decode
from continuum.domain.disclosure import disclosed_values, still_disclosed_to
from continuum.domain.episode import Episode
from continuum.domain.events import ReferralIssued
from continuum.domain.feed import Audience, FeedViewer, ReferralFacts, lab_view, partner_view, referral_of, test_of
from continuum.eventlog.projection import episode_as_of, episode_event
from continuum.eventlog.reads import EpisodeReads
from continuum.eventlog.records import StoredEvent
from continuum.eventlog.store import PostgresEventStore

SOURCE = "continuum"
TYPE_PREFIX = "org.continuum."
SCAN_PAGE = 500  # events read at a time when a reader sees only some of them
SCAN_LIMIT = 5000  # events looked at for one answer at most (a lab's page may skip many it does not see)
_FORMAT = JSONFormat()


@dataclass
class FeedPage:
    """The events shown (position, episode, CloudEvent as JSON), the same as stored (`shown`), and the position
    to resume after."""

    events: list[tuple[int, str, bytes]] = field(default_factory=list)
    shown: list[StoredEvent] = field(default_factory=list)
    next_after: int = 0

    @property
    def episode_ids(self) -> list[str]:
        return list(dict.fromkeys(episode for _, episode, _ in self.events))


View = Callable[[StoredEvent], dict[str, Any] | None]


class FeedReader:
    """One answer's reads of the log for one reader (its lookups cached for that answer only)."""

    def __init__(self, store: PostgresEventStore, reads: EpisodeReads, viewer: FeedViewer) -> None:
        self.store = store
        self.reads = reads
        self.viewer = viewer
        self.now = datetime.now(UTC)
        self._labs: dict[tuple[str, str], str | None] = {}
        self._referrals: dict[tuple[str, str], ReferralFacts | None] = {}
        self._consents: dict[str, bool] = {}
        views: dict[Audience, View] = {
            Audience.WHOLE: self._whole,
            Audience.LAB: self._as_lab,
            Audience.PARTNER: self._as_partner,
        }
        self.view = views[viewer.audience]
        self.filtered = viewer.audience is not Audience.WHOLE

    def page(self, after: int, limit: int) -> FeedPage:
        """Up to `limit` events the reader sees after position `after`, in position order."""
        found = FeedPage(next_after=after)
        scanned = 0
        with self.store.engine.connect() as connection:
            while len(found.events) < limit and scanned < SCAN_LIMIT:
                asked = SCAN_PAGE if self.filtered else limit - len(found.events)
                rows = self.store.read_page(connection, after_position=found.next_after, limit=asked)
                for event in rows:
                    scanned += 1
                    found.next_after = event.position
                    data = self.view(event)
                    if data is not None:
                        found.events.append((event.position, event.stream_id, cloud_event(event, data)))
                        found.shown.append(event)
                        if len(found.events) == limit:
                            break
                if len(rows) < asked:
                    break  # the head of the log
        return found

    def shown_at(self, position: int) -> bytes | None:
        """The event at `position` as this reader sees it now (None: not shown to it, or no such event)."""
        with self.store.engine.connect() as connection:
            rows = self.store.read_page(connection, after_position=position - 1, limit=1)
        if not rows or rows[0].position != position:
            return None
        data = self.view(rows[0])
        return None if data is None else cloud_event(rows[0], data)

    def _whole(self, event: StoredEvent) -> dict[str, Any]:
        return event.payload

    def _as_lab(self, event: StoredEvent) -> dict[str, Any] | None:
        test_id = test_of(event.event_type, event.payload)
        if test_id is None:
            return None
        if event.event_type == "TestOrdered":
            sent_to = event.payload.get("lab_id")
        else:
            key = (event.stream_id, test_id)
            if key not in self._labs:
                test = self.reads.element(event.stream_id, "tests", "test_id", test_id)
                self._labs[key] = test.get("lab_id") if test else None
            sent_to = self._labs[key]
        assert self.viewer.subject is not None  # a lab reader names its lab
        return lab_view(event.stream_id, event.event_type, event.payload, sent_to, self.viewer.subject)

    def _as_partner(self, event: StoredEvent) -> dict[str, Any] | None:
        referral_id = referral_of(event.event_type, event.payload)
        if referral_id is None:
            return None
        partner = self.viewer.subject
        assert partner is not None  # a partner reader names its partner
        key = (event.stream_id, referral_id)
        if key not in self._referrals:
            self._referrals[key] = self._referral_facts(event.stream_id, referral_id)
        facts = self._referrals[key]
        if facts is not None and event.event_type == "ReferralIssued" and facts.recipient == partner:
            facts = ReferralFacts(facts.recipient, facts.disclosed, facts.still_disclosed, self._disclosed(event))
        return partner_view(event.stream_id, event.event_type, event.payload, facts, partner)

    def _referral_facts(self, episode_id: str, referral_id: str) -> ReferralFacts | None:
        referral = self.reads.element(episode_id, "referrals", "referral_id", referral_id)
        if referral is None:
            return None
        recipient = referral.get("recipient")
        if recipient != self.viewer.subject:
            return ReferralFacts(recipient, False, False, {})
        if episode_id not in self._consents:
            state = self.reads.get(episode_id)
            consents = decode(Episode, state).consents if state else ()
            self._consents[episode_id] = still_disclosed_to(consents, str(recipient), self.now)
        disclosed = referral.get("status") != "awaiting_consent"
        return ReferralFacts(recipient, disclosed, self._consents[episode_id], {})

    def _disclosed(self, event: StoredEvent) -> dict[str, Any]:
        """What the referral disclosed, as the workflow sent it: from the episode as it stood after the issue."""
        issued = episode_event(event)
        state = episode_as_of(self.store, event.stream_id, version=event.stream_version)
        if not isinstance(issued, ReferralIssued) or state is None:
            return {}
        return disclosed_values(state, issued)


def cloud_event(event: StoredEvent, data: dict[str, Any]) -> bytes:
    """The event in CloudEvents 1.0 structured JSON form."""
    attributes: dict[str, Any] = {
        "id": str(event.event_id),
        "source": SOURCE,
        "type": TYPE_PREFIX + event.event_type,
        "subject": event.stream_id,
        "time": event.occurred_at,
        "datacontenttype": "application/json",
        "position": event.position,
    }
    return _FORMAT.write(CloudEvent(attributes, data))
