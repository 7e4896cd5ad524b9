"""Who made something happen, one shape everywhere: an API key, a person, a rule, the system.

Pure. Timelines store `kind`, `id` and, for a person, `name`: the display name they had at
the time (the console sends it with X-Acting-Person, shared/http/auth.py), so a timeline names
people outside the console too. `display_name` falls back to the id when there is no name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

API_KEY: Final = "api"  # a caller with an API key; id: "<scope>#<key digest>"
PERSON: Final = "person"  # a signed-in person (the console); id: their user id
RULE: Final = "rule"  # a detector or a scheduled rule; id: the rule's name
CONSUMER: Final = "consumer"  # an engine consumer acting on an event; id: its group
SYSTEM: Final = "system"  # the service itself (a policy, a migration)


@dataclass(frozen=True, slots=True)
class Actor:
    kind: str
    id: str
    name: str | None = None

    @property
    def display_name(self) -> str:
        return self.name or self.id

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}"
