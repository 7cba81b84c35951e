"""What a webhook subscription may ask for (domain/webhooks.py), and the signature its deliveries carry."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks import Webhook

from continuum.access import Role, subscription_request
from continuum.activities.webhooks import signed_headers
from continuum.domain.errors import WebhookRequestInvalid
from continuum.domain.events import EVENT_TYPES
from continuum.domain.feed import LAB_EVENTS, PARTNER_EVENTS, Audience, visible_event_types
from continuum.domain.webhooks import SubscriptionRequest
from continuum.eventlog.webhooks import new_secret
from continuum.runtime.logs import redact


def _refused(field: str, **asked: object) -> None:
    given_ = {"url": "https://ehr.example.org/hooks", "event_types": ["EpisodeOpened"], "subject": None, **asked}
    with pytest.raises(WebhookRequestInvalid) as refused:
        SubscriptionRequest.checked(
            str(given_["url"]),
            list(given_["event_types"]),  # type: ignore[call-overload]
            given_.get("audience", Audience.WHOLE),  # type: ignore[arg-type]
            given_["subject"],  # type: ignore[arg-type]
        )
    assert refused.value.parameter == field and str(refused.value).startswith(f"{field}: ")


def test_an_http_or_https_url_with_a_host_is_taken_as_given() -> None:
    for url in ("http://127.0.0.1:8080/hooks", "https://ehr.example.org/continuum?x=1"):
        assert SubscriptionRequest.checked(url, ["EpisodeOpened"], Audience.WHOLE, None).url == url


@given(st.sampled_from(["ftp", "file", "mailto", "javascript", "ws", "data", ""]), st.text(max_size=20))
def test_any_other_scheme_is_refused_naming_the_url(scheme: str, rest: str) -> None:
    _refused("url", url=f"{scheme}://{rest}" if scheme else rest)


def test_a_url_without_a_host_or_too_long_is_refused() -> None:
    for url in ("https:///hooks", "http://[nonsense]/", "http://h.example.org:99999/", "https://h.example.org/a b"):
        _refused("url", url=url)
    _refused("url", url="https://h.example.org/" + "a" * 2000)


def test_event_types_must_be_known_and_at_least_one() -> None:
    _refused("event_types", event_types=[])
    _refused("event_types", event_types=["EpisodeOpened", "org.continuum.EpisodeOpened"])
    asked = SubscriptionRequest.checked("https://h.example.org", ["TestOrdered", "TestOrdered"], Audience.WHOLE, None)
    assert asked.event_types == ("TestOrdered",)


@given(st.sampled_from(sorted(EVENT_TYPES)))
def test_a_lab_or_partner_subscription_may_name_only_what_its_audience_is_ever_shown(event_type: str) -> None:
    for audience, shown in ((Audience.LAB, tuple(LAB_EVENTS)), (Audience.PARTNER, PARTNER_EVENTS)):
        if event_type in shown:
            asked = SubscriptionRequest.checked("https://h.example.org", [event_type], audience, "them-1")
            assert asked.event_types == (event_type,)
        else:
            _refused("event_types", event_types=[event_type], audience=audience, subject="them-1")


def test_visible_event_types_are_the_audiences_and_the_whole_log_for_everyone_else() -> None:
    known = tuple(EVENT_TYPES)
    assert set(visible_event_types(Audience.LAB, known)) == set(LAB_EVENTS)
    assert set(visible_event_types(Audience.PARTNER, known)) == set(PARTNER_EVENTS)
    assert visible_event_types(Audience.WHOLE, known) == known


def test_a_lab_or_partner_subscription_names_its_subject_and_a_whole_one_carries_none() -> None:
    _refused("subject", event_types=["TestOrdered"], audience=Audience.LAB)
    _refused("subject", event_types=["ReferralIssued"], audience=Audience.PARTNER, subject="")
    assert SubscriptionRequest.checked("https://h.example.org", ["EpisodeOpened"], Audience.WHOLE, "x").subject is None


def test_each_role_that_reads_the_feed_may_be_subscribed_and_an_admin_may_not() -> None:
    for role in (Role.DIRECTOR, Role.AUDITOR, Role.CLINICIAN):
        assert subscription_request("https://h.example.org", ["EpisodeOpened"], role, None).audience is Audience.WHOLE
    assert subscription_request("https://h.example.org", ["TestOrdered"], Role.LAB, "lab-1").subject == "lab-1"
    with pytest.raises(WebhookRequestInvalid, match="^role: the admin role reads no events"):
        subscription_request("https://h.example.org", ["EpisodeOpened"], Role.ADMIN, None)


def test_a_delivery_is_signed_per_standard_webhooks_and_a_changed_body_does_not_verify() -> None:
    secret, body = new_secret(), b'{"id":"e-1","type":"org.continuum.EpisodeOpened"}'
    headers = signed_headers(secret, "e-1", body, datetime.now(UTC))

    assert secret.startswith("whsec_") and new_secret() != secret
    assert headers["webhook-id"] == "e-1" and headers["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(body, headers) == {"id": "e-1", "type": "org.continuum.EpisodeOpened"}
    with pytest.raises(Exception, match="signature"):
        Webhook(secret).verify(body.replace(b"e-1", b"e-2"), headers)
    with pytest.raises(Exception, match="signature"):
        Webhook(new_secret()).verify(body, headers)


def test_no_log_line_can_show_a_signing_secret() -> None:
    secret = new_secret()
    assert secret not in redact(f"signing with {secret}") and "whsec_[redacted]" in redact(f"k={secret}")
