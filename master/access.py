"""Who may do what on the web UI and the REST API.

Anonymous visitors read everything. Forcing, stopping and rebuilding (every control endpoint)
needs a user in the `admins` role, from `[access]` in farm.toml. Passwords live in a file outside
the repo, one `user:password` a line (`access.users_file`, under the git-ignored secrets folder by
default); the first start creates it with a generated password for `admin` and says where it is.
`FARM_ADMIN_PASSWORD`, when set, is admin's password (for scripts and tests) and wins over the file.

The session cookie (a signed token of who is logged in) is HttpOnly, so no script on a page can
read it, and SameSite=Lax, so another site's forms and scripts cannot act with it.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

from buildbot.plugins import util
from twisted.python import log
from twisted.web import server

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


# Cookie names of Buildbot's sessions (buildbot.www.auth.build_cookie_name, twisted's getSession).
SESSION_COOKIES = (b"TWISTED_SESSION", b"TWISTED_SECURE_SESSION")


class SessionCookieRequest(server.Request):
    """A web request whose session cookies are HttpOnly and SameSite=Lax. Buildbot 4.3 sets them in
    two places, twisted's Request.getSession (a new, anonymous session) and
    BuildbotSession.updateSession (a login or logout), both through addCookie."""

    def addCookie(self, k, v, *args, **kwargs):
        name = k.encode() if isinstance(k, str) else k
        if name.startswith(SESSION_COOKIES):
            kwargs.setdefault("httpOnly", True)
            kwargs.setdefault("sameSite", "lax")
        return super().addCookie(k, v, *args, **kwargs)


class UserPasswordAuth(util.UserPasswordAuth):
    """Buildbot's user/password login, on a web site whose requests are SessionCookieRequests."""

    def reconfigAuth(self, master, new_config):
        super().reconfigAuth(master, new_config)
        # Buildbot makes its site before it reconfigures the auth and listens only after; every
        # connection takes the site's request factory when it opens.
        site = master.www.site
        if site is not None and site.requestFactory in (server.Request, SessionCookieRequest):
            site.requestFactory = SessionCookieRequest
        elif site is not None:
            log.msg(f"access: the web site's requests are {site.requestFactory!r}; session cookies stay as they are")


def www_access(access: AccessSettings, environ=os.environ) -> dict:
    """The `auth` and `authz` entries of c['www']."""
    return {
        "auth": UserPasswordAuth(users(access, environ)),
        "authz": util.Authz(
            allowRules=[util.AnyControlEndpointMatcher(role=ADMINS_ROLE)],
            roleMatchers=[util.RolesFromUsername(roles=[ADMINS_ROLE], usernames=list(access.admins))],
        ),
    }
