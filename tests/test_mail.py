"""Mail to registered maintainers: the decisions, the registry and its command line, and a real
farm mailing a real SMTP server (aiosmtpd) started by the test."""

import email
import email.policy
import html
import http.server
import json
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from buildbot.process.results import EXCEPTION, FAILURE, RETRY, SKIPPED, SUCCESS, WARNINGS

from master import mail, maintainers, recipients
from master.settings import ADDRESS, SettingsError
from tests.farm import ROOT, Farm, free_port, wait_for
from tests.pkgindex import write_package


# -- decisions -----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "now, before, kind",
    [
        (FAILURE, SUCCESS, "regression"),
        (FAILURE, WARNINGS, "regression"),
        (SUCCESS, FAILURE, "fixed"),
        (WARNINGS, FAILURE, "fixed"),
        (FAILURE, None, "new-failure"),
        (FAILURE, FAILURE, None),  # an unchanged failure is no news
        (SUCCESS, SUCCESS, None),
        (SUCCESS, None, None),
        (SKIPPED, FAILURE, None),  # not applicable says nothing about the package
        (RETRY, SUCCESS, None),
        (EXCEPTION, SUCCESS, None),
    ],
)
def test_classify(now, before, kind):
    assert mail.classify(now, before) == kind


def test_infrastructure_errors_are_recognised():
    assert mail.is_infra({"results": RETRY, "properties": {}})
    assert mail.is_infra({"results": EXCEPTION, "properties": {}})
    assert mail.is_infra({"results": SUCCESS, "properties": {"outcome": ("infra-error", "runner")}})
    assert not mail.is_infra({"results": FAILURE, "properties": {"outcome": ("tests-failed", "runner")}})


def test_addresses_from_pypi_metadata():
    data = {"info": {"maintainer_email": "Ann <ann@example.org>, bob@example.org", "author_email": "ann@example.org"}}
    assert recipients.from_metadata(data) == (["ann@example.org", "bob@example.org"], [])
    assert recipients.from_metadata({"info": {"maintainer_email": None, "author_email": ""}}) == ([], [])
    assert recipients.from_metadata({"info": ["not", "a", "table"]}) == ([], [])


@pytest.mark.parametrize("info, refusal", [
    ({"author_email": "ann@example.org\r\nBcc: victim@example.org"}, "author_email holds a line break"),
    ({"maintainer_email": "ann@example.org\x00"}, "maintainer_email holds a line break or another control"),
    ({"maintainer_email": '"victim@example.org, other@example.org" <ann@example.org>'},
     "maintainer_email has an address inside a display name"),
    ({"maintainer_email": ", ".join(f"m{i}@example.org" for i in range(40))}, "names 40 addresses; more than 3"),
    ({"maintainer_email": "a@example.org, b@example.org", "author_email": "c@example.org, d@example.org"},
     "names 4 addresses"),
    ({"author_email": "not an address"}, "author_email holds something that is not a mail address"),
])
def test_metadata_that_names_others_is_refused_whole(info, refusal):
    found, refused = recipients.from_metadata({"info": info})
    assert found == [] and refusal in refused[0]


def test_the_mail_budgets_in_the_database(tmp_path):
    """A mailbox (however spelt) has its mails of the day, which questions do not use up; it is
    asked to confirm once a week whatever the project; the farm asks max_questions_per_day a day."""
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'state.sqlite'}")
    now = 1_800_000_000
    assert recipients.mailbox("Ann+farm-1@Example.ORG.") == "ann@example.org"
    with engine.begin() as conn:
        recipients.create_tables(conn)
        assert recipients.ask(conn, "a+q@example.org", "other", now, 5), "a question first"
        assert [recipients.take(conn, f"A+{i}@example.org", "six", "release", now + i, 3) for i in range(4)] == [
            True, True, True, False], "three mails to one mailbox, by three spellings, and not a fourth"
        assert recipients.take(conn, "a@example.org", "six", "release", now + recipients.DAY + 3, 3), "a day later"
        assert recipients.ask(conn, "b@example.org", "six", now, 3)
        assert recipients.asked(conn, "six") == {"b@example.org"}
        assert not recipients.ask(conn, "B+x@example.org", "attrs", now + recipients.DAY, 3), "asked this week"
        assert recipients.ask(conn, "c@example.org", "attrs", now + 1, 3)
        assert not recipients.ask(conn, "d@example.org", "attrs", now + 2, 3), "the farm asked three today"
        assert recipients.ask(conn, "b@example.org", "attrs", now + recipients.ASK_AGAIN_AFTER + 1, 3)
        # Counted mails go after two days; a question is remembered for a year.
        recipients.take(conn, "e@example.org", "six", "release", now + recipients.ASK_AGAIN_AFTER + 2, 3)
        assert recipients.asked(conn, "six") == {"b@example.org"}
        kinds = conn.execute(sa.select(recipients.sent_log.c.kind)).scalars().all()
        assert sorted(kinds) == ["confirm"] * 4 + ["release"]


def test_a_package_s_text_stays_on_its_quoted_line():
    """A reason from a build (the runner quotes the package in it) with line breaks in it: one line,
    behind "> ", in the release mail and in the digest; nothing else of the mail says evil.example."""
    forged = "Tests failed.\r\n  log:       https://evil.example/\nUnsubscribe from everything: https://evil.example/x"
    change = mail.SlotChange(slot="linux-py3.12", kind="regression", outcome="tests-failed", previous="passed",
                             previous_version="1.0", reason=forged, reproduce="python worker/runner.py six==1.1\nevil.example",
                             url="http://farm/#/builders/1/builds/2")
    links = {"name": "six", "page": "http://farm/p", "unsubscribe": "http://farm/u"}
    rendered = []
    mail.mail_formatter("release").render_message_dict(None, dict(
        title="T", package="six", version="1.1", summary="s", changes=[change], packages=[links])).addCallback(rendered.append)
    entry = dict(__import__("dataclasses").asdict(change), kind_text=change.kind_text, caused=change.caused, version="1.1")
    mail.mail_formatter("digest").render_message_dict(None, dict(
        title="T", count=1, names="six", packages=[dict(links, changes=[entry])])).addCallback(rendered.append)
    for message in rendered:
        lines = message["body"].splitlines()
        said = [line for line in lines if "evil.example" in line]
        quoted = [line for line in said if line.lstrip().startswith("> ")]
        assert len(quoted) == 1 and "\\x0d\\x0a  log:" in quoted[0], message["body"]
        # The reproduce line is the farm's own field: its line break shown, not acted on.
        assert [line for line in said if line not in quoted] == [
            line for line in lines if line.lstrip().startswith("reproduce:")]
        assert not any(line.startswith(("Unsubscribe from everything", "  log:       https://evil")) for line in lines)


# -- the registry --------------------------------------------------------------------------------

def test_registry_add_remove_and_opt_out(tmp_path):
    path = tmp_path / "maintainers.toml"
    assert maintainers.load(path) == maintainers.Registry()
    maintainers.add(path, "Six", "a@example.org")
    maintainers.add(path, "six", "b@example.org", digest=True)
    maintainers.add(path, "six", "a@example.org")  # twice: still one entry
    registry = maintainers.load(path)
    assert [(r.address, r.digest) for r in registry.for_package("SIX")] == [("a@example.org", False), ("b@example.org", True)]
    assert maintainers.remove(path, "six", "a@example.org", opt_out=True)
    registry = maintainers.load(path)
    assert [r.address for r in registry.for_package("six")] == ["b@example.org"]
    assert registry.opted_out("six", "A@example.org")
    maintainers.add(path, "six", "a@example.org")  # registering again lifts the opt-out
    assert not maintainers.load(path).opted_out("six", "a@example.org")
    assert not maintainers.remove(path, "attrs", "nobody@example.org")


@pytest.mark.parametrize(
    "text, message",
    [
        ("[[maintainers]]\npackage = 'six'\n", "'maintainers[0].address' must be a mail address"),
        ("[[maintainers]]\npackage = 'six'\naddress = 'a@b'\ndigest = 'yes'\n", "'maintainers[0].digest' must be true or false"),
        ("[[maintainers]]\npackage = 'six'\naddress = 'a@b'\nmode = 1\n", "'maintainers[0].mode' is not known"),
        ("[[maintainer]]\n", "'maintainer' is not known"),
        ("[[maintainers]\n", "not valid TOML"),
    ],
)
def test_registry_errors_name_the_entry(tmp_path, text, message):
    path = tmp_path / "maintainers.toml"
    path.write_text(text)
    with pytest.raises(SettingsError, match=re.escape(message)):
        maintainers.load(path)


def test_unsubscribe_tokens_are_signed():
    secret = b"k" * 32
    token = maintainers.token(secret, "six", "a@example.org")
    assert maintainers.valid_token(secret, "Six", "A@example.org", token)
    assert not maintainers.valid_token(secret, "six", "b@example.org", token)
    assert not maintainers.valid_token(b"other", "six", "a@example.org", token)
    # Two purposes never sign the same bytes: the address that would make them (with a NUL) is none.
    confirm = maintainers.token(secret, "six", "a@example.org", maintainers.CONFIRM)
    assert confirm != token and not maintainers.valid_token(secret, "six", "a@example.org", confirm)
    assert maintainers.valid_token(secret, "confirm", "six\0a@example.org", confirm)  # the same bytes...
    assert not ADDRESS.match("six\0a@example.org")  # ...for an address the pages refuse
    url = maintainers.unsubscribe_url("http://farm/", secret, "six", "a@example.org")
    assert url.startswith("http://farm/plugins/wsgi_dashboards/packages/unsubscribe?package=six&address=a%40example.org&token=")


def test_the_command_line(tmp_path):
    config = tmp_path / "farm.toml"
    config.write_text('[mail]\nmaintainers_file = "registry.toml"\n[[workers]]\nname = "local"\nlocal = true\n'
                      'password_file = "w.pass"\n')

    def run(*argv):
        return subprocess.run([sys.executable, "-m", "master.maintainers", "--config", str(config), *argv],
                              cwd=ROOT, capture_output=True, text=True)

    added = run("add", "Six", "ann@example.org", "--digest")
    assert added.returncode == 0, added.stderr
    assert "ann@example.org gets a daily digest for six" in added.stdout and "buildbot reconfig" in added.stdout
    assert run("list").stdout == "six\tann@example.org\tdigest\n"
    assert run("remove", "six", "ann@example.org").returncode == 0
    assert run("list").stdout == ""
    missing = run("remove", "six", "ann@example.org")
    assert missing.returncode == 1 and "not registered" in missing.stderr
    assert run("add", "six", "not-an-address").returncode == 2


# -- a real farm and a real SMTP server ----------------------------------------------------------

class Mailbox:
    """Messages an aiosmtpd server received: [(recipients, message)]; each message's bytes as they
    came are its `raw`."""

    def __init__(self):
        self.messages = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        message.raw = envelope.content
        with self.lock:
            self.messages.append((list(envelope.rcpt_tos), message))
        return "250 OK"

    def to(self, address):
        with self.lock:
            return [m for rcpt, m in self.messages if address in rcpt]

    def wait(self, address, count, timeout=60):
        return wait_for(lambda: len(self.to(address)) >= count and self.to(address), timeout,
                        f"{count} messages to {address} (have: {[m['Subject'] for m in self.to(address)]})")


@pytest.fixture(scope="module")
def mailbox():
    controller_module = pytest.importorskip("aiosmtpd.controller")
    box = Mailbox()
    controller = controller_module.Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    box.port = controller.port
    yield box
    controller.stop()


METADATA = "from-metadata@example.org"  # in the package's JSON on the (fake) PyPI, not registered
# mailfix-spam's metadata names forty strangers, and a Bcc: behind a line break
STRANGERS = [f"stranger{i}@example.org" for i in range(40)]
VICTIM, SPAM_MAINTAINER = "victim@example.org", "spam-maintainer@example.org"
REAL = "real-maintainer@example.org"  # registered for mailfix-real; strangers' projects name it too
# mailfix-busy: five registered addresses, more than the farm's max_recipients (4); each may have
# max_mails_per_address (3) a day
BUSY = [f"busy{i}@example.org" for i in range(1, 6)]
MAINTAINER = "maintainer@example.org"
OTHER = "colleague@example.org"
DIGEST = "digest@example.org"
OPERATORS = "operators@example.org"
HANG_MAINTAINER = "hang@example.org"
# Seconds a phase may take in this farm: the hanging fixture's tests run into it (an infrastructure
# error, as the runner classes timeouts); every other phase here takes a few seconds.
PHASE_TIMEOUT = 15
PACKAGE = "mailfix-alpha"
SLOTS = ("3.11", "3.12")
DIGEST_SECONDS = 6


@pytest.fixture(scope="module")
def pypi_json():
    """PyPI's per-project JSON: mailfix-alpha names a maintainer address (mail.pypi_addresses),
    mailfix-spam forty and a Bcc: header; a test may change them, as an uploader does."""
    infos = {PACKAGE: {"maintainer_email": f"Meta <{METADATA}>", "author_email": None},
             "mailfix-spam": {"maintainer_email": ", ".join(STRANGERS),
                              "author_email": f"Ann <ann@example.org>\r\nBcc: {VICTIM}"}}

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            name = self.path[len("/pypi/"):-len("/json")] if self.path.startswith("/pypi/") else ""
            if name not in infos or self.path != f"/pypi/{name}/json":
                self.send_error(404)
                return
            data = json.dumps({"info": infos[name]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    server.url, server.infos = f"http://127.0.0.1:{server.server_address[1]}", infos  # a test may change them
    yield server
    server.shutdown()


@pytest.fixture(scope="module")
def farm(tmp_path_factory, package_index, mailbox, pypi_json):
    folder = tmp_path_factory.mktemp("mailfarm")
    extra = f"""
[pypi]
feed = "none"
url = "{pypi_json.url}"

[mail]
enabled = true
from = "PyPI test farm <farm@example.org>"
relay_host = "127.0.0.1"
relay_port = {mailbox.port}
operators = ["{OPERATORS}"]
maintainers_file = "maintainers.toml"
digest_interval = {DIGEST_SECONDS}
pypi_addresses = true
max_recipients = 4
max_mails_per_address = 3
"""
    farm = Farm(folder, package_index.url, pythons=SLOTS, extra_toml=extra, timeout=PHASE_TIMEOUT)
    # The command line writes the registry, as an operator would, before the master starts.
    for argv in (["add", PACKAGE, MAINTAINER], ["add", PACKAGE, OTHER], ["add", PACKAGE, DIGEST, "--digest"],
                 ["add", "mailfix-hang", HANG_MAINTAINER], ["add", "mailfix-spam", SPAM_MAINTAINER],
                 *(["add", "mailfix-busy", address] for address in BUSY), ["add", "mailfix-real", REAL]):
        subprocess.run([sys.executable, "-m", "master.maintainers", "--config", str(farm.config), *argv],
                       cwd=ROOT, check=True, capture_output=True)
    farm.start()
    yield farm
    assert farm.stop() == 0, farm.log_tail()


@pytest.fixture(scope="module")
def release(farm, package_index, tmp_path_factory):
    dists = tmp_path_factory.mktemp("maildists")

    def release(version, behaviour, name=PACKAGE, slots=None, **package):
        package_index.add(write_package(dists, name, version, behaviour, **package))
        return farm.wait_buildset(farm.force(name, version, slots=slots)[0])

    return release


def body(message):
    return message.get_body(("plain",)).get_content()


@pytest.mark.slow
def test_mail_only_on_change_with_digest_and_unsubscribe(farm, release, mailbox):
    release("1.0", "pass")  # the first release passes: nothing to say

    release("1.1", "testfail")  # a regression on both slots: ONE mail summarising both
    (regression,) = mailbox.wait(MAINTAINER, 1)
    assert regression["Subject"] == f"[PyPI test farm] {PACKAGE} 1.1: 2 slots changed (2 regression)"
    text = body(regression)
    for slot in farm.slots:
        assert f"{slot}: REGRESSION: tests-failed (was passed in 1.0)" in text
    assert text.count(f"{farm.url}#/builders/") == 2, "a log link per slot"
    assert text.count(f"runner.py {PACKAGE}==1.1") == 2, "the reproduce command per slot"
    assert f"plugins/wsgi_dashboards/packages/index.html?name={PACKAGE}" in text
    assert regression["List-Unsubscribe"].startswith(f"<{farm.url}plugins/wsgi_dashboards/packages/unsubscribe?")
    mailbox.wait(OTHER, 1)
    # mail.pypi_addresses: the address of the package's own metadata is asked, once, and told nothing else
    (ask,) = mailbox.wait(METADATA, 1)
    assert ask["Subject"] == f"[PyPI test farm] {PACKAGE}: mail you when its test results change?"
    assert "tests-failed" not in body(ask) and "1.1" not in body(ask)
    confirm = re.search(r"Yes, mail me: (\S+)", body(ask)).group(1)
    with urllib.request.urlopen(confirm) as response:  # a link followed confirms nothing
        page = response.read().decode()
    assert "Yes, mail me" in page and METADATA in page
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(confirm.replace("token=", "token=0"))
    assert refused.value.code == 403

    release("1.2", "testfail")  # an unchanged failure: no mail
    assert len(mailbox.to(METADATA)) == 1, "asked once, not at every release"
    fields = dict(re.findall(r'name="(package|address|token)" value="([^"]*)"', page))
    with urllib.request.urlopen(urllib.request.Request(confirm.split("?")[0], data=urllib.parse.urlencode(
            {k: html.unescape(v) for k, v in fields.items()}).encode())) as response:
        assert "gets mail when the results of" in response.read().decode()
    release("1.3", "pass")  # fixed
    fixed = mailbox.wait(MAINTAINER, 2)[1]
    assert fixed["Subject"] == f"[PyPI test farm] {PACKAGE} 1.3: 2 slots changed (2 fixed)"
    assert "FIXED: passed (was tests-failed in 1.2)" in body(fixed)
    mailbox.wait(OTHER, 2)
    assert [m["Subject"] for m in mailbox.to(MAINTAINER)][2:] == [], "1.2 failed as 1.1 did: no mail"
    assert mailbox.wait(METADATA, 2)[1]["Subject"] == fixed["Subject"], "confirmed: it gets the results"

    # The digest registration got no mail per release; its digests hold both changes.
    digests = wait_for(
        lambda: (lambda found: "1.3" in found and found)("".join(body(m) for m in mailbox.to(DIGEST))),
        DIGEST_SECONDS * 4, "the digest with the fix",
    )
    assert all("daily digest" in m["Subject"] for m in mailbox.to(DIGEST))
    assert f"{PACKAGE} 1.1" in digests and "REGRESSION" in digests and f"{PACKAGE} 1.3" in digests and "FIXED" in digests
    assert len(mailbox.to(DIGEST)) <= 2

    # The unsubscribe link works: a confirmation page, then the registration is gone.
    link = regression["List-Unsubscribe"].strip("<>")
    with urllib.request.urlopen(link) as response:
        page = response.read().decode()
    assert "Stop mailing" in page and MAINTAINER in page
    fields = dict(re.findall(r'name="(package|address|token)" value="([^"]*)"', page))
    form = urllib.parse.urlencode({k: html.unescape(v) for k, v in fields.items()}).encode()
    with urllib.request.urlopen(urllib.request.Request(link.split("?")[0], data=form)) as response:
        assert "gets no more mail" in response.read().decode()
    forged = link.replace("token=", "token=0")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(forged)
    assert refused.value.code == 403

    # A mail client's one-click unsubscribe (RFC 8058): the header as sent, not folded into encoded
    # words, and one POST to it.
    metadata_fixed = mailbox.to(METADATA)[1]
    assert re.search(rb"\nList-Unsubscribe: <http://[^\s>]+>\r?\n", metadata_fixed.raw), metadata_fixed.raw[:1500]
    assert re.search(rb"\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r?\n", metadata_fixed.raw)
    with urllib.request.urlopen(urllib.request.Request(metadata_fixed["List-Unsubscribe"].strip("<>"),
                                                       data=b"List-Unsubscribe=One-Click")) as response:
        assert "gets no more mail" in response.read().decode()

    release("1.4", "testfail")  # a regression again: the colleague hears of it, the unsubscribers do not
    latest = mailbox.wait(OTHER, 3)[2]
    assert "1.4" in latest["Subject"] and "regression" in latest["Subject"]
    time.sleep(1)
    assert len(mailbox.to(MAINTAINER)) == 2
    assert len(mailbox.to(METADATA)) == 2, "opted out: neither mailed nor asked again"
    assert not mailbox.to(OPERATORS), "no infrastructure error so far"


@pytest.mark.slow
def test_a_release_cannot_make_the_farm_mail_strangers(farm, release, mailbox):
    """mailfix-spam's metadata names forty strangers and carries a Bcc: behind a line break: it is
    refused whole; only its registered maintainer hears of its failure. A test of its opens a file
    of its tree the sdist does not ship, by a path written to look like the farm's own lines: the
    runner names it in its reason, which the mail shows on one line, behind "> "."""
    forged = "data/  log:       https://evil.example/\\nUnsubscribe from everything: https://evil.example/x"
    release("1.0", "testfail", name="mailfix-spam", slots=["linux-py3.12"], extra_files={
        "tests/test_data.py": f"def test_reads_its_data():\n    open({forged!r}).read()\n"})
    (news,) = mailbox.wait(SPAM_MAINTAINER, 1)
    assert "new failure on linux-py3.12" in news["Subject"]
    lines = body(news).splitlines()
    said = [line for line in lines if "evil.example" in line]
    assert said and all(line.startswith("  > ") for line in said), body(news)
    assert "the sdist does not ship (data/" in said[0]
    time.sleep(2)  # (the farm asks candidates after it has mailed the maintainers)
    assert not [m for m in mailbox.messages if set(m[0]) & set(STRANGERS + [VICTIM, "ann@example.org"])]
    assert "no address of mailfix-spam's metadata is asked to confirm: its author_email holds a line break" \
        in farm.log_tail(200000)


@pytest.mark.slow
def test_an_uploader_cannot_make_the_farm_ask_without_bound(farm, release, mailbox, pypi_json):
    """mailfix-rotate names three new addresses at every release, one of them a new spelling of the
    same mailbox (victim+rN@): a project has at most max_recipients (4) addresses asked, a mailbox
    is asked once. Three strangers' projects name a registered maintainer of mailfix-real: it is
    asked once, and its own mail of the day is not used up by the questions."""
    for n, (version, behaviour) in enumerate((("1.0", "testfail"), ("1.1", "pass"), ("1.2", "testfail"))):
        pypi_json.infos["mailfix-rotate"] = {"maintainer_email": ", ".join(
            [f"rot{n}{j}@example.org" for j in range(2)] + [f"victim+r{n}@example.org"])}
        release(version, behaviour, name="mailfix-rotate", slots=["linux-py3.12"])
    for i in range(3):
        pypi_json.infos[f"mailfix-starve{i}"] = {"maintainer_email": REAL}
        release("1.0", "testfail", name=f"mailfix-starve{i}", slots=["linux-py3.12"])
    release("1.0", "testfail", name="mailfix-real", slots=["linux-py3.12"])
    told = mailbox.wait(REAL, 2)
    time.sleep(2)

    def asked(address):
        return [m for rcpt, m in mailbox.messages if address in rcpt and "mail you when" in m["Subject"]]
    rotated = [a for n in range(3) for a in [f"rot{n}{j}@example.org" for j in range(2)] + [f"victim+r{n}@example.org"]
               if asked(a)]
    assert rotated == ["rot00@example.org", "rot01@example.org", "victim+r0@example.org", "rot10@example.org"]
    assert [m["Subject"] for m in mailbox.to(REAL)] == [told[0]["Subject"], told[1]["Subject"]]
    assert "mail you when" in told[0]["Subject"] and "mailfix-starve0" in told[0]["Subject"]
    assert told[1]["Subject"] == "[PyPI test farm] mailfix-real 1.0: new failure on linux-py3.12"


@pytest.mark.slow
def test_mail_stays_within_its_limits(farm, release, mailbox):
    """mailfix-busy has five registered addresses: four are mailed (max_recipients); each has three
    mails a day (max_mails_per_address), after which its changes come in its digest."""
    slot = ["linux-py3.12"]
    for version, behaviour in (("1.0", "testfail"), ("1.1", "pass"), ("1.2", "testfail")):
        release(version, behaviour, name="mailfix-busy", slots=slot)
        for address in BUSY[:4]:
            mailbox.wait(address, int(version[-1]) + 1)
    release("1.3", "pass", name="mailfix-busy", slots=slot)  # fixed again: a fourth change in a day
    for address in BUSY[:4]:
        received = wait_for(lambda: (lambda got: len(got) == 4 and got)(mailbox.to(address)),
                            DIGEST_SECONDS * 4, f"{address}'s digest")
        assert [m["Subject"].split(": ", 1)[0] for m in received[:3]] == [
            f"[PyPI test farm] mailfix-busy {v}" for v in ("1.0", "1.1", "1.2")]
        assert "daily digest" in received[3]["Subject"] and "mailfix-busy 1.3" in body(received[3])
    assert mailbox.to(BUSY[4]) == [], "past max_recipients"


@pytest.mark.slow
def test_infrastructure_errors_mail_only_the_operators(farm, release, mailbox):
    """A release whose tests outlast the phase timeout: an infrastructure error, retried once, then
    an exception. The operators hear of both builds in one mail; the maintainer hears nothing.
    (Last in this module: Buildbot quarantines a worker after an exception.)"""
    _, builds = release("1.0", "hang", name="mailfix-hang", slots=["linux-py3.12"])
    assert sorted(b["results"] for b in builds) == [EXCEPTION, RETRY], [b["state_string"] for b in builds]
    (alert,) = mailbox.wait(OPERATORS, 1)
    assert alert["Subject"] == "[PyPI test farm] mailfix-hang 1.0: infrastructure error"
    text = body(alert)
    assert text.count("linux-py3.12: mailfix-hang 1.0:") == 2 and text.count(farm.url + "#/builders/") == 2
    assert "maintainers were not told" in text
    time.sleep(1)
    assert mailbox.to(HANG_MAINTAINER) == [], "infrastructure errors never mail maintainers"


@pytest.mark.slow
def test_the_operators_hear_of_a_worker_gone_missing(tmp_path, package_index, mailbox):
    """A worker that connected and went away for [mail] worker_missing_after seconds: one mail."""
    operators = "missing-watch@example.org"
    extra = f"""
[mail]
enabled = true
relay_host = "127.0.0.1"
relay_port = {mailbox.port}
operators = ["{operators}"]
worker_missing_after = 3

[[workers]]
name = "ghost"
os = "linux"
pythons = ["3.12"]
password_env = "FARM_TEST_GHOST_PASSWORD"
"""
    farm = Farm(tmp_path, package_index.url, pythons=("3.12",), extra_toml=extra,
                env={"FARM_TEST_GHOST_PASSWORD": "password-of-the-ghost"}).start()
    ghost_dir = tmp_path / "ghost"
    try:
        bin_dir = ROOT / ".venv" / "bin"
        subprocess.run([str(bin_dir / "buildbot-worker"), "create-worker", "--quiet", str(ghost_dir),
                        f"127.0.0.1:{farm.pb_port}", "ghost", "password-of-the-ghost"], check=True)
        ghost = subprocess.Popen([str(bin_dir / "buildbot-worker"), "start", "--nodaemon", str(ghost_dir)],
                                 cwd=ghost_dir, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: any(w["name"] == "ghost" and w["connected_to"] for w in farm.get("workers")["workers"]),
                     60, "the ghost worker to connect")
            # (Buildbot counts a worker absent when the master starts as missing too: a slow
            # start may have mailed once already.)
            time.sleep(4)
            before = len(mailbox.to(operators))
        finally:
            ghost.kill()
            ghost.wait()
        message = mailbox.wait(operators, before + 1, timeout=90)[-1]
        assert "ghost" in message["Subject"] and "missing" in message["Subject"].lower(), message["Subject"]
        time.sleep(5)
        assert len(mailbox.to(operators)) == before + 1, "told once"
    finally:
        assert farm.stop() == 0, farm.log_tail()
