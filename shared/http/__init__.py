"""HTTP plumbing every service uses: the app factory, problem+json errors, API keys, idempotency."""

from orderguard.shared.http.app import create_app
from orderguard.shared.http.auth import Caller, require_scope
from orderguard.shared.http.problems import Problem

__all__ = ["Caller", "Problem", "create_app", "require_scope"]
