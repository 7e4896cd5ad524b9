"""The notifier's own settings: ORDERGUARD_NOTIFIER__<FIELD> (docs/settings.md).

Channel endpoints and credentials (e.g. ORDERGUARD_NOTIFIER__CHANNELS__WEBHOOK__URL), the
delivery policy (language, quiet hours, dedup, retries, rate limits), the routing file, work
items, the operators' console and the retention of what it keeps. Secrets are `SecretStr` so
they never print. IM robot URLs carry their access token, so they are secrets too; each team
may have its own robot (its group chat), the others share one.
"""

from __future__ import annotations

from datetime import time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from orderguard.shared.settings import ServiceSettings
from orderguard.shared.topics import TEAMS


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConsoleOidcSettings(_Section):
    """OpenID Connect sign-in to the console (authorization code + PKCE). Unset: local accounts
    only. Teams and roles come from claims of the ID token: `groups_claim` (a list of the
    provider's group names, mapped by `group_map`) and `roles_claim` (a list of orderguard's own
    `team:role` / `admin` grants, for providers that can emit them)."""

    issuer: str = Field(
        pattern=r"^https?://", description="Issuer URL; its discovery document is read"
    )
    client_id: str = Field(min_length=1, description="The console's client id at the provider")
    client_secret: SecretStr | None = Field(
        default=None, description="Confidential client's secret (none: a public client, PKCE only)"
    )
    provider_name: str = Field(default="SSO", description="Shown as 'Sign in with <name>'")
    scopes: str = Field(default="openid profile email", description="Scopes asked for")
    groups_claim: str = Field(default="groups", description="Claim listing the provider's groups")
    roles_claim: str = Field(
        default="orderguard_roles", description="Claim listing grants (`team:role`, `admin`)"
    )
    group_map: dict[str, list[str]] = Field(
        default_factory=dict,
        description='Provider group -> grants, e.g. {"wh-leads": ["warehouse:lead"]}',
    )
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


class WebhookSettings(_Section):
    """A receiver of every message as signed JSON (a merchant's or an integration's endpoint)."""

    url: str = Field(pattern=r"^https?://", description="Where messages are POSTed")
    secret: SecretStr = Field(description="HMAC-SHA256 key the receiver verifies signatures with")


class EmailSettings(_Section):
    host: str = Field(description="SMTP server")
    port: int = Field(default=587, ge=1, le=65535, description="SMTP port")
    sender: str = Field(description="From address, e.g. orderguard <noreply@shop.example>")
    username: str | None = Field(default=None, description="SMTP login, if it needs one")
    password: SecretStr | None = Field(default=None, description="SMTP password")
    starttls: bool = Field(default=True, description="Upgrade with STARTTLS (port 587)")
    use_tls: bool = Field(default=False, description="Implicit TLS (port 465)")


class SmsSettings(_Section):
    """A generic JSON SMS gateway: POST {to, text, reference} with a bearer API key."""

    url: str = Field(pattern=r"^https?://", description="The gateway's endpoint")
    api_key: SecretStr = Field(description="Bearer key of the gateway")
    sender: str | None = Field(
        default=None, description="Sender name or number, if the gateway takes one"
    )


class ImRobot(_Section):
    """A group robot of an IM app: one per team's group chat."""

    url: SecretStr = Field(description="Incoming webhook URL; it carries the token")


class DingTalkRobot(ImRobot):
    secret: SecretStr | None = Field(default=None, description="The robot's 加签 secret, if set")


class _Robots(_Section):
    """One robot per team (`teams`, e.g. ORDERGUARD_NOTIFIER__CHANNELS__SLACK__TEAMS__WAREHOUSE__URL),
    and a shared one (`url`) for the teams without their own and for other recipients."""

    teams: dict[str, ImRobot] = Field(
        default_factory=dict, description="Team -> its own robot (`__TEAMS__<TEAM>__URL`)"
    )

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
    teams: dict[str, DingTalkRobot] = Field(  # type: ignore[assignment]
        default_factory=dict,
        description="Team -> its own robot (`__TEAMS__<TEAM>__URL`, `__TEAMS__<TEAM>__SECRET`)",
    )

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

    webhook: WebhookSettings | None = Field(default=None, description="Signed JSON webhook")
    email: EmailSettings | None = Field(default=None, description="Email over SMTP")
    sms: SmsSettings | None = Field(default=None, description="SMS gateway")
    dingtalk: DingTalkSettings | None = Field(default=None, description="DingTalk group robots")
    wecom: ImWebhookSettings | None = Field(default=None, description="WeCom group robots")
    slack: ImWebhookSettings | None = Field(default=None, description="Slack incoming webhooks")
    team_emails: dict[str, str] = Field(
        default_factory=dict,
        description="Team -> staff email, for routes that name the email channel",
    )
    timeout_s: float = Field(default=10.0, gt=0, description="Per attempt, connect to answer")


class QuietHours(_Section):
    """Customer messages due in [start, end) local time wait until `end` (the window may span
    midnight). Staff messages wait only when `staff` is set, and P1 never waits."""

    enabled: bool = Field(default=True, description="Hold customer messages in quiet hours")
    start: time = Field(default=time(22, 0), description="Start of quiet hours (local time)")
    end: time = Field(default=time(8, 0), description="End of quiet hours (local time)")
    timezone: str = Field(default="Asia/Shanghai", description="Time zone of start and end")
    staff: bool = Field(default=False, description="Staff messages wait too (P1 never waits)")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}, e.g. Asia/Shanghai") from None
        return value


class DeliverySettings(_Section):
    default_language: str = Field(default="zh-CN", description="Language of templates")
    customer_channels: list[str] = Field(
        default_factory=lambda: ["sms", "email"],
        description="Channels for a customer request that names none (those the customer can be"
        " reached on)",
    )
    quiet_hours: QuietHours = Field(default_factory=QuietHours, description="Quiet hours")
    dedup_window_s: float = Field(
        default=3600.0,
        ge=0,
        description="The same template and params to the same recipient and channel within this"
        " window: sent once",
    )
    max_attempts: int = Field(default=6, ge=1, description="Attempts of a delivery at most")
    retry_base_s: float = Field(
        default=30.0, gt=0, description="First retry delay (doubles each attempt)"
    )
    retry_cap_s: float = Field(default=3600.0, gt=0, description="Longest retry delay")
    rate_limits: dict[str, int] = Field(
        default_factory=lambda: {"sms": 100, "dingtalk": 20},
        description="Channel -> messages per window; a channel not listed is not limited",
    )
    rate_window_s: float = Field(default=60.0, gt=0, description="The rate limits' window")


class NotifierRetention(_Section):
    """How long what the notifier keeps is kept (docs/operations.md lists every table)."""

    resolved_anomalies_s: float = Field(
        default=7 * 24 * 3600,
        gt=0,
        description="Anomalies the router saw, once resolved: a copy re-sent later than this is"
        " routed again",
    )
    open_anomalies_s: float = Field(
        default=90 * 24 * 3600,
        gt=0,
        description="Anomalies never resolved (one-off rules, a detector gone) are forgotten"
        " after this",
    )
    deliveries_s: float = Field(
        default=30 * 24 * 3600,
        gt=0,
        description="Finished deliveries and their attempts (the delivery log's depth); at least"
        " the deliveries' dedup window",
    )


class NotifierSettings(ServiceSettings):
    """Channels, deliveries, routing, work items, the operators' console, retention."""

    channels: ChannelSettings = Field(
        default_factory=ChannelSettings, description="Where messages go out"
    )
    deliveries: DeliverySettings = Field(
        default_factory=DeliverySettings, description="How messages go out"
    )
    routing_file: str | None = Field(
        default=None, description="The routing file (YAML); unset: the built-in routing.yaml"
    )
    routing_reload_interval_s: float = Field(
        default=5.0,
        ge=0,
        description="How often the routing file's modification time is checked for a hot"
        " reload (0: never)",
    )
    # Work items (services/notifier/work_items); the time to resolve is the routing file's.
    work_item_claim_within_s: dict[str, float] = Field(
        default_factory=lambda: {"P1": 1800.0, "P2": 7200.0, "P3": 28800.0, "P4": 86400.0},
        description="Severity -> seconds a work item has to be claimed",
    )
    work_item_reminder_every_s: float = Field(
        default=900.0, gt=0, description="Reminder interval of unclaimed urgent (P1/P2) items"
    )
    work_item_reopen_window_s: float = Field(
        default=3600.0,
        ge=0,
        description="A resolved group firing again within this long reopens its item",
    )
    work_item_max_tier: int = Field(default=3, ge=1, description="Escalation tiers")
    # The operators' console (services/notifier/console).
    console_session_idle_s: float = Field(
        default=30 * 60, gt=0, description="A console session idle this long ends"
    )
    console_session_absolute_s: float = Field(
        default=12 * 3600, gt=0, description="A console session ends this long after login"
    )
    console_cookie_secure: bool = Field(
        default=True,
        description="Session cookies marked Secure (browsers treat http://127.0.0.1 and"
        " localhost as secure)",
    )
    console_order_url: str | None = Field(
        default=None,
        description="The order service's URL the console calls server-side for a person",
    )
    console_aftersales_url: str | None = Field(
        default=None,
        description="The after-sales service's URL the console calls server-side for a person",
    )
    console_logistics_url: str | None = Field(
        default=None,
        description="The logistics service's URL the console calls server-side for a person",
    )
    console_api_key: SecretStr | None = Field(
        default=None,
        description="The console's key to the order service (scope `delegate`)",
    )
    console_oidc: ConsoleOidcSettings | None = Field(
        default=None, description="OpenID Connect sign-in to the console; unset: local accounts"
    )
    retention: NotifierRetention = Field(
        default_factory=NotifierRetention, description="Retention of what the notifier keeps"
    )

    @model_validator(mode="after")
    def _deliveries_outlive_their_dedup_window(self) -> NotifierSettings:
        if self.retention.deliveries_s < self.deliveries.dedup_window_s:
            raise ValueError(
                "ORDERGUARD_NOTIFIER__RETENTION__DELIVERIES_S must be at least the deliveries'"
                f" dedup window ({self.deliveries.dedup_window_s}s): a delivery is its own dedup"
                " record"
            )
        return self
