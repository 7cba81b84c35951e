"""Errors a clinician or an integrating service can read.

DomainError
├── InvalidIdentifier      an id that is not a pseudonymous identifier of the accepted form
├── UnknownEventType       an event type (or schema version) this code does not know
├── CommandRejected        a command that the episode's current state does not allow
│   └── CommandInvalid     a value the policy does not know (a medication outside its catalogue): a 422
├── CommandUnrecordable    a command whose values the event log cannot record (nothing was recorded)
├── UnknownEpisode         no episode has that id
├── DisclosureRefused      a disclosure without a lawful basis (names the parameter to mend)
├── WebhookRequestInvalid  a webhook subscription asking for what cannot be delivered (names the field)
└── PolicyError            a care-pathway policy file that is malformed (names the key)
"""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error raised by the domain; `str(error)` is meant for a person."""


class InvalidIdentifier(DomainError):
    pass


class UnknownEventType(DomainError):
    pass


class CommandRejected(DomainError):
    pass


class CommandInvalid(CommandRejected):
    """Refused for what it says, not for the episode's state: the caller fixes the request (HTTP 422)."""


class CommandUnrecordable(DomainError):
    pass


class UnknownEpisode(DomainError):
    pass


class PolicyError(DomainError):
    pass


class DisclosureRefused(DomainError):
    """A disclosure the rules do not allow; `parameter` names what the requester must give or mend."""

    def __init__(self, parameter: str, reason: str) -> None:
        super().__init__(f"{parameter}: {reason}")
        self.parameter = parameter


class WebhookRequestInvalid(DomainError):
    """A subscription that cannot be delivered as asked; `parameter` names the field to mend (HTTP 422)."""

    def __init__(self, parameter: str, reason: str) -> None:
        super().__init__(f"{parameter}: {reason}")
        self.parameter = parameter
