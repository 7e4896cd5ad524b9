"""The domain's error vocabulary, defined once: what a use case refuses, in the domain's words.

Pure (no web framework): domain modules and use cases raise these; `shared/http/problems.py`
renders each kind as RFC 9457 problem+json once (not found 404, illegal transition and
conflict 409, invalid 422, forbidden 403). A service's own error is a subclass naming its thing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class DomainError(Exception):
    """A refusal a client can act on. `details` are extra JSON members of the problem."""

    slug: str = "domain-error"
    title: str = "Request refused"

    def __init__(
        self,
        detail: str,
        *,
        slug: str | None = None,
        title: str | None = None,
        **details: Any,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if slug is not None:
            self.slug = slug
        if title is not None:
            self.title = title
        self.details = details


def _id_member(thing: str) -> str:
    """ "work item" -> "work_item_id": the problem member naming the thing's id."""
    return thing.lower().replace(" ", "_").replace("-", "_") + "_id"


class NotFound(DomainError):
    """No `thing` with this id (or not known to this service yet)."""

    def __init__(
        self, thing: str, thing_id: str, detail: str | None = None, **details: Any
    ) -> None:
        super().__init__(
            detail or f"No {thing} {thing_id}.",
            slug=f"{thing.lower().replace(' ', '-')}-not-found",
            title=f"Unknown {thing}",
            **{_id_member(thing): thing_id, **details},
        )
        self.thing = thing
        self.thing_id = thing_id


class IllegalTransition(DomainError):
    """An action the current state of a thing does not allow; names the state and what is.

    `allowed_from`: the states in which the action is allowed (None when not worth saying);
    `allowed_actions`: what the current state allows.
    """

    slug = "illegal-transition"

    def __init__(
        self,
        thing: str,
        thing_id: str,
        current: str,
        action: str,
        allowed_actions: Sequence[str] = (),
        allowed_from: Sequence[str] | None = None,
        kind: str | None = None,
    ) -> None:
        label = f"{thing.capitalize()} {thing_id}" + (f" ({kind})" if kind else "")
        if allowed_from is None:
            when = f"allowed now: {', '.join(allowed_actions) or 'nothing'}"
        elif allowed_from:
            when = f"{action} is allowed only when it is {' or '.join(allowed_from)}"
        else:
            when = f"{action} is never allowed" + (f" for a {kind} {thing}" if kind else "")
        details: dict[str, Any] = {
            _id_member(thing): thing_id,
            "current_state": str(current),
            "allowed_actions": [str(a) for a in allowed_actions],
        }
        super().__init__(
            f"{label} is {current}; {when}.",
            title=f"{thing.capitalize()} cannot {action} now",
            **details,
        )
        self.thing = thing
        self.thing_id = thing_id
        self.current = current
        self.action = action
        self.allowed_actions = [str(a) for a in allowed_actions]
        self.allowed_from = None if allowed_from is None else [str(s) for s in allowed_from]

    def __str__(self) -> str:
        return f"{self.thing} {self.thing_id} is {self.current}: cannot {self.action}"


class Conflict(DomainError):
    """The request collides with what is already there (a replay, a number in use, ...)."""

    slug = "conflict"
    title = "Conflict"


class Invalid(DomainError):
    """A well-formed request that can never be applied as it stands."""

    slug = "invalid"
    title = "Request cannot be applied"


class Forbidden(DomainError):
    """The caller is known but may not do this (not a lead of the team, ...)."""

    slug = "forbidden"
    title = "Not allowed"
