"""The notifier's part of the one settings object: channel endpoints and credentials, and the
delivery policy (language, quiet hours, dedup, retries, rate limits).

Everything comes from the environment, e.g. ORDERGUARD_CHANNELS__WEBHOOK__URL or
ORDERGUARD_DELIVERIES__QUIET_HOURS__START; secrets are `SecretStr` so they never print.
IM robot URLs carry their access token, so they are secrets too; each team may have its own
robot (its group chat), the others share one.
"""

from __future__ import annotations

from datetime import time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from orderguard.shared.topics import TEAMS


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WebhookSettings(_Section):
    """A receiver of every message as signed JSON (a merchant's or an integration's endpoint)."""

    url: str = Field(pattern=r"^https?://")
    secret: SecretStr = Field(description="HMAC-SHA256 key the receiver verifies signatures with")


class EmailSettings(_Section):
    host: str
    port: int = Field(default=587, ge=1, le=65535)
    sender: str = Field(description="From address, e.g. orderguard <noreply@shop.example>")
    username: str | None = None
    password: SecretStr | None = None
    starttls: bool = Field(default=True, description="Upgrade with STARTTLS (port 587)")
    use_tls: bool = Field(default=False, description="Implicit TLS (port 465)")


class SmsSettings(_Section):
    """A generic JSON SMS gateway: POST {to, text, reference} with a bearer API key."""

    url: str = Field(pattern=r"^https?://")
    api_key: SecretStr
    sender: str | None = None


class ImRobot(_Section):
    """A group robot of an IM app: one per team's group chat."""

    url: SecretStr = Field(description="Incoming webhook URL; it carries the token")


class DingTalkRobot(ImRobot):
    secret: SecretStr | None = Field(default=None, description="The robot's 加签 secret, if set")


class _Robots(_Section):
    """One robot per team (`teams`, e.g. ORDERGUARD_CHANNELS__SLACK__TEAMS__WAREHOUSE__URL),
    and a shared one (`url`) for the teams without their own and for other recipients."""

    teams: dict[str, ImRobot] = Field(default_factory=dict)

    def robot_for(self, recipient_kind: str, recipient_id: str) -> ImRobot | None:
        """The team's own robot, else the shared one; None: no robot reaches them."""
        if recipient_kind == "team" and recipient_id in self.teams:
            return self.teams[recipient_id]
        return self._shared()

    def _shared(self) -> ImRobot | None:
        raise NotImplementedError

    @field_validator("teams")
    @classmethod
    def _known_teams(cls, teams: dict[str, ImRobot]) -> dict[str, ImRobot]:
        unknown = sorted(set(teams) - set(TEAMS))
        if unknown:
            raise ValueError(f"unknown team(s) {', '.join(unknown)}: expected {', '.join(TEAMS)}")
        return teams

    @model_validator(mode="after")
    def _some_robot(self) -> _Robots:
        if self._shared() is None and not self.teams:
            raise ValueError("give a robot: `url` (shared) or `teams` (one per team)")
        return self


class DingTalkSettings(_Robots):
    url: SecretStr | None = Field(
        default=None, description="Shared group robot webhook URL (with its access_token)"
    )
    secret: SecretStr | None = Field(default=None, description="The robot's 加签 secret, if set")
    teams: dict[str, DingTalkRobot] = Field(default_factory=dict)  # type: ignore[assignment]

    def _shared(self) -> DingTalkRobot | None:
        return None if self.url is None else DingTalkRobot(url=self.url, secret=self.secret)


class ImWebhookSettings(_Robots):
    url: SecretStr | None = Field(
        default=None, description="Shared incoming webhook URL; it carries the token"
    )

    def _shared(self) -> ImRobot | None:
        return None if self.url is None else ImRobot(url=self.url)


class ChannelSettings(_Section):
    """Endpoints and credentials per channel; a channel left unset is not used."""

    webhook: WebhookSettings | None = None
    email: EmailSettings | None = None
    sms: SmsSettings | None = None
    dingtalk: DingTalkSettings | None = None
    wecom: ImWebhookSettings | None = None
    slack: ImWebhookSettings | None = None
    # Staff email per team queue, for routes that name the email channel.
    team_emails: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(default=10.0, gt=0, description="Per attempt, connect to answer")


class QuietHours(_Section):
    """Customer messages due in [start, end) local time wait until `end` (the window may span
    midnight). Staff messages wait only when `staff` is set, and P1 never waits."""

    enabled: bool = True
    start: time = time(22, 0)
    end: time = time(8, 0)
    timezone: str = "Asia/Shanghai"
    staff: bool = False

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}, e.g. Asia/Shanghai") from None
        return value


class DeliverySettings(_Section):
    default_language: str = "zh-CN"
    # Channels for a customer request that names none (those the customer can be reached on).
    customer_channels: list[str] = Field(default_factory=lambda: ["sms", "email"])
    quiet_hours: QuietHours = Field(default_factory=QuietHours)
    # The same template and params to the same recipient and channel within this window: once.
    dedup_window_s: float = Field(default=3600.0, ge=0)
    max_attempts: int = Field(default=6, ge=1)
    retry_base_s: float = Field(default=30.0, gt=0)
    retry_cap_s: float = Field(default=3600.0, gt=0)
    # Messages per channel per window; a channel not listed is not limited.
    rate_limits: dict[str, int] = Field(default_factory=lambda: {"sms": 100, "dingtalk": 20})
    rate_window_s: float = Field(default=60.0, gt=0)


class ConsoleOidcSettings(_Section):
    """OpenID Connect sign-in to the console (authorization code + PKCE). Unset: local accounts
    only. Teams and roles come from claims of the ID token: `groups_claim` (a list of the
    provider's group names, mapped by `group_map`) and `roles_claim` (a list of orderguard's own
    `team:role` / `admin` grants, for providers that can emit them)."""

    issuer: str = Field(
        pattern=r"^https?://", description="Issuer URL; its discovery document is read"
    )
    client_id: str = Field(min_length=1)
    client_secret: SecretStr | None = Field(
        default=None, description="Confidential client's secret (none: a public client, PKCE only)"
    )
    provider_name: str = Field(default="SSO", description="Shown as 'Sign in with <name>'")
    scopes: str = "openid profile email"
    groups_claim: str = "groups"
    roles_claim: str = "orderguard_roles"
    # provider group -> grants: "warehouse" (operator), "warehouse:lead", "admin"
    group_map: dict[str, list[str]] = Field(default_factory=dict)
    redirect_url: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="The callback registered at the provider (default: from the request's URL)",
    )

    @field_validator("group_map")
    @classmethod
    def _grants_name_teams_and_roles(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for group, grants in value.items():
            for grant in grants:
                team, _, role = grant.partition(":")
                if grant != "admin" and (team not in TEAMS or role not in ("", "operator", "lead")):
                    raise ValueError(
                        f"group {group!r}: grant {grant!r} is not admin, <team> or <team>:lead"
                        f" (teams: {', '.join(TEAMS)})"
                    )
        return value
