"""Who may do what on the web UI and the REST API.

Anonymous visitors read everything. Forcing, stopping and rebuilding (every control endpoint)
needs a user in the `admins` role, from `[access]` in farm.toml. Passwords live in a file outside
the repo, one `user:password` a line (`access.users_file`, under the git-ignored secrets folder by
default); the first start creates it with a generated password for `admin` and says where it is.
`FARM_ADMIN_PASSWORD`, when set, is admin's password (for scripts and tests) and wins over the file.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

from buildbot.plugins import util
from twisted.python import log

from master.settings import ADMIN_USER, AccessSettings, SettingsError

ADMIN_PASSWORD_ENV = "FARM_ADMIN_PASSWORD"
ADMINS_ROLE = "admins"


def read_users(path: Path) -> dict[str, str]:
    """{user: password} from a `user:password` file; blank lines and `#` comments are skipped."""
    users = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, colon, password = line.partition(":")
        if not colon or not user or not password:
            raise SettingsError(f"{path}, line {number}: must read `user:password`.")
        users[user] = password
    return users


def create_admin(path: Path) -> str:
    """Write a users file holding `admin` with a generated password (owner-only); return the password."""
    password = secrets.token_urlsafe(18)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(
            "# Users of the farm's web UI, one `user:password` a line; those named in\n"
            "# [access] admins of farm.toml may force, stop and rebuild. Keep this file private.\n"
            f"{ADMIN_USER}:{password}\n"
        )
    return password


def users(access: AccessSettings, environ=os.environ) -> dict[str, str]:
    """Every user and password: the file's (created on first use), then FARM_ADMIN_PASSWORD for admin."""
    path = access.users_file
    found: dict[str, str] = {}
    if path.exists():
        found = read_users(path)
    elif not environ.get(ADMIN_PASSWORD_ENV):
        create_admin(path)
        found = read_users(path)
        announce(
            f"Created the farm's admin user: log in to the web UI as `{ADMIN_USER}` with the password "
            f"in {path} (or set ${ADMIN_PASSWORD_ENV})."
        )
    if environ.get(ADMIN_PASSWORD_ENV):
        found[ADMIN_USER] = environ[ADMIN_PASSWORD_ENV]
    return found


def announce(message: str) -> None:
    """Say it on the terminal of `make run` too: twistd sends print() and log.msg to twistd.log."""
    log.msg(message)
    try:
        print(message, file=sys.__stderr__, flush=True)
    except (OSError, ValueError, AttributeError):
        pass


def www_access(access: AccessSettings, environ=os.environ) -> dict:
    """The `auth` and `authz` entries of c['www']."""
    return {
        "auth": util.UserPasswordAuth(users(access, environ)),
        "authz": util.Authz(
            allowRules=[util.AnyControlEndpointMatcher(role=ADMINS_ROLE)],
            roleMatchers=[util.RolesFromUsername(roles=[ADMINS_ROLE], usernames=list(access.admins))],
        ),
    }
