"""Who may do what: anonymous visitors read, admins force, stop and rebuild. Tested on the users
file and settings, then through a real master's REST API."""

import base64
import http.client
import os
import stat
import urllib.error
import urllib.request

import pytest

from master import access, settings
from master.settings import SettingsError
from tests.farm import Farm

LOCAL = "[[workers]]\nname = 'local'\nlocal = true\npassword_file = 'w.pass'\n"


def load(tmp_path, text, environ=None):
    path = tmp_path / "farm.toml"
    path.write_text(text)
    return settings.load(path, environ or {})


def test_a_first_start_creates_the_admin_with_a_private_password(tmp_path, capfd):
    loaded = load(tmp_path, LOCAL)
    assert loaded.access.admins == ("admin",)
    users_file = loaded.access.users_file
    assert users_file == tmp_path / "var" / "secrets" / "users.pass"
    users = access.users(loaded.access, environ={})
    assert list(users) == ["admin"] and len(users["admin"]) >= 20
    assert stat.S_IMODE(os.stat(users_file).st_mode) == 0o600
    assert str(users_file) in capfd.readouterr().err, "make run says where the password is"
    assert access.users(loaded.access, environ={}) == users, "a second start keeps it"


def test_farm_admin_password_wins(tmp_path):
    loaded = load(tmp_path, LOCAL)
    assert access.users(loaded.access, environ={"FARM_ADMIN_PASSWORD": "s3cret"}) == {"admin": "s3cret"}
    assert not loaded.access.users_file.exists(), "no generated password when the environment gives one"


def test_the_users_file_and_admins_come_from_the_settings(tmp_path):
    (tmp_path / "people").write_text("# operators\nann:pw1\n\nbob:pw2\n")
    loaded = load(tmp_path, "[access]\nadmins = ['ann']\nusers_file = 'people'\n" + LOCAL)
    assert access.users(loaded.access, environ={}) == {"ann": "pw1", "bob": "pw2"}
    assert loaded.access.admins == ("ann",)
    (tmp_path / "people").write_text("ann\n")
    with pytest.raises(SettingsError, match="people, line 1: must read `user:password`"):
        access.users(loaded.access, environ={})


@pytest.mark.parametrize(
    "text, message",
    [
        ("[access]\nadmins = ['a b']\n", "'access.admins' must list user names"),
        ("[access]\nusers = 'x'\n", "'access.users' is not a known setting"),
        ("[mail]\nfrom = 'nobody'\n", "'mail.from' must be a mail address"),
        ("[mail]\noperators = ['ops']\n", "'mail.operators' must list mail addresses"),
        ("[mail]\nrelay_port = 0\n", "'mail.relay_port' must be a port number"),
        ("[mail]\ndigest_interval = 0\n", "'mail.digest_interval' must be a positive number"),
        ("[mail]\nsmtp_user = 'farm'\n", "'mail.smtp_password_file' or 'smtp_password_env'"),
        ("[mail]\nenabled = 'yes'\n", "'mail.enabled' must be true or false"),
    ],
)
def test_settings_errors_name_the_key(tmp_path, text, message):
    with pytest.raises(SettingsError, match=message):
        load(tmp_path, text + LOCAL)


# -- through the REST API ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def farm(tmp_path_factory, package_index):
    farm = Farm(tmp_path_factory.mktemp("access"), package_index.url, pythons=("3.12",)).start()
    yield farm
    assert farm.stop() == 0, farm.log_tail()


@pytest.mark.slow
def test_anonymous_visitors_read_but_may_not_force_or_stop(farm):
    assert farm.get("builders")["builders"], "reading needs no login"
    refused = farm.rpc("forceschedulers/rebuild", "force", anonymous=True, package="farmfix-pass", reason="x")
    assert refused["error"]["message"] == "you need to have role 'admins'"
    assert farm.get("buildrequests")["buildrequests"] == [], "nothing was queued"
    stop = farm.rpc("builders/1/builds/1", "stop", anonymous=True)
    assert stop["error"]["message"] == "you need to have role 'admins'"


@pytest.mark.slow
def test_a_wrong_password_does_not_log_in(farm):
    credentials = base64.b64encode(b"admin:wrong").decode()
    request = urllib.request.Request(f"{farm.url}auth/login", headers={"Authorization": f"Basic {credentials}"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 401


@pytest.mark.slow
def test_an_admin_forces_a_rebuild(farm):
    buildsetid, _ = farm.force("farmfix-pass")  # logs in with FARM_ADMIN_PASSWORD (tests/farm.py)
    _, builds = farm.wait_buildset(buildsetid)
    assert [b["state_string"] for b in builds] == ["farmfix-pass 1.0: passed"]


def _session_cookies(farm, path, headers=None):
    """The Set-Cookie headers of Buildbot's session in the answer to GET `path` (no redirect followed)."""
    connection = http.client.HTTPConnection("127.0.0.1", farm.http_port, timeout=30)
    try:
        connection.request("GET", f"/{path}", headers=headers or {})
        answer = connection.getresponse()
        answer.read()
        return answer.status, [c for c in answer.headers.get_all("Set-Cookie") or [] if c.startswith("TWISTED_")]
    finally:
        connection.close()


@pytest.mark.slow
def test_session_cookies_are_http_only_and_same_site(farm):
    """Anonymous visitors' and admins' session cookies: no script reads them, no other site sends them."""
    status, anonymous = _session_cookies(farm, "")
    assert status == 200 and anonymous, "the UI gives a visitor an (anonymous) session"
    credentials = base64.b64encode(f"admin:{farm.admin_password}".encode()).decode()
    status, logged_in = _session_cookies(farm, "auth/login", {"Authorization": f"Basic {credentials}"})
    assert status == 302 and logged_in, "logging in sets the admin's session"
    for cookie in anonymous + logged_in:
        attributes = [part.strip().lower() for part in cookie.split(";")[1:]]
        assert "httponly" in attributes and "samesite=lax" in attributes, cookie
