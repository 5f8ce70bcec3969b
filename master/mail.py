"""Mail to registered maintainers, only when a result changes; infrastructure errors to the operators.

When every build of a release's buildset is done, `ReleaseChangesGenerator` compares each slot's
result with the package's previous verdict on that slot (master/history.py) and keeps the slots
that changed:

- regression: the release fails where the previous build passed;
- fixed: it passes where the previous build failed;
- new failure: it fails on a slot with no earlier verdict (a new slot, or the first release seen).

An unchanged failure is no news. Not applicable, infrastructure errors and cancelled builds carry
no verdict: they never mail maintainers. Infrastructure errors go to `mail.operators` instead.

`MaintainerMail` (a Buildbot MailNotifier) sends ONE message per release to each maintainer,
summarising every slot that changed, with the outcome, log links, the reproduce command and a
signed unsubscribe link (also as RFC 8058 one-click headers); registrations with `digest = true`
collect their changes and get one mail every `mail.digest_interval` seconds instead. Who may be
mailed, and how much, is master/recipients.py's: addresses from a package's metadata only once
they confirm, a few addresses per project and a daily budget per address.

The bodies are Jinja templates (master/templates/mail/) rendered by Buildbot's MessageFormatter;
every value a package controls enters a SlotChange as one bounded line (`untrusted.line`), and the
runner's reason, which quotes the package, is shown quoted.
"""

from __future__ import annotations

import dataclasses
import email.policy
import email.utils
import json
import os
import time
from email.message import EmailMessage
from pathlib import Path

import sqlalchemy as sa

from buildbot import interfaces
from buildbot.process.results import EXCEPTION, RETRY, statusToString
from buildbot.reporters import utils as reporter_utils
from buildbot.reporters.generators.worker import WorkerMissingGenerator
from buildbot.reporters.mail import MailNotifier
from buildbot.reporters.message import MessageFormatter
from buildbot.util import httpclientservice
from buildbot.util.state import StateMixin
from farm_runner import contract, untrusted
from twisted.internet import defer, task
from twisted.python import log
from zope.interface import implementer

from master import cluster, history, maintainers, recipients
from master.settings import MailSettings, Settings

SERVICE_NAME = "maintainer-mail"
TEMPLATES = Path(__file__).parent / "templates" / "mail"
# A header line may be 998 characters (RFC 5322): the default policy's 78 folds a long unsubscribe
# URL into RFC 2047 encoded-words, which no mail client acts on.
POLICY = email.policy.default.clone(max_line_length=998)

# The digest queue: one row per change waiting for its address's next digest. Rows are added and
# taken (read and deleted in one transaction) by any master of a cluster without losing one.
metadata = sa.MetaData()
digest_queue = sa.Table(
    "farm_mail_digest", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("address", sa.String(320), nullable=False),
    sa.Column("entry", sa.Text, nullable=False),  # JSON: package, version and a SlotChange's fields
    sa.Column("queued_at", sa.Integer, nullable=False),
)


def create_tables(conn) -> None:
    metadata.create_all(conn, checkfirst=True)


def queue_entries(conn, address: str, entries: list[dict], now: int) -> None:
    conn.execute(digest_queue.insert(), [{"address": address, "entry": json.dumps(e), "queued_at": now}
                                         for e in entries])


def take_entries(conn) -> dict[str, list[dict]]:
    """{address: entries} of the whole queue, which is emptied of them in the same transaction."""
    rows = conn.execute(sa.select(digest_queue.c.id, digest_queue.c.address, digest_queue.c.entry)
                        .order_by(digest_queue.c.id)).fetchall()
    if rows:
        ids = [row.id for row in rows]
        for start in range(0, len(ids), 500):
            conn.execute(digest_queue.delete().where(digest_queue.c.id.in_(ids[start:start + 500])))
    pending: dict[str, list[dict]] = {}
    for row in rows:
        pending.setdefault(row.address, []).append(json.loads(row.entry))
    return pending
KIND_TEXT = {"regression": "regression", "fixed": "fixed", "new-failure": "new failure"}


def classify(results, previous_results) -> str | None:
    """The change on one slot, or None when there is no news for a maintainer."""
    now, before = history.verdict(results), history.verdict(previous_results) if previous_results is not None else None
    if now == "failing" and before == "passing":
        return "regression"
    if now == "passing" and before == "failing":
        return "fixed"
    if now == "failing" and before is None:
        return "new-failure"
    return None


def is_infra(build: dict) -> bool:
    return build["results"] in (RETRY, EXCEPTION) or history.property_value(build, "outcome") == contract.INFRA_ERROR


def package_page_url(base_url: str, package: str) -> str:
    return f"{base_url}plugins/wsgi_dashboards/packages/index.html?name={package}"


@dataclasses.dataclass
class SlotChange:
    slot: str
    kind: str
    outcome: str
    previous: str  # the previous build's outcome ("" when there was none)
    previous_version: str
    reason: str
    reproduce: str
    url: str
    # A dependency re-test (master/retests.py): the dependency release it followed,
    # "requests 2.33.0 (was 2.32.5)".
    because: str = ""

    def __post_init__(self):
        # Where a build's values enter the mail: each one bounded line, whatever the package wrote.
        for field in dataclasses.fields(self):
            setattr(self, field.name, untrusted.line(getattr(self, field.name) or "", 1000))
        if self.kind not in KIND_TEXT:
            raise ValueError(f"not a kind of change: {self.kind!r}")

    @property
    def kind_text(self) -> str:
        return KIND_TEXT[self.kind]

    @property
    def caused(self) -> bool:
        """A dependency re-test that failed: the dependency's release is the likely cause."""
        return self.kind in ("regression", "new-failure")


def _last_build_per_slot(builds: list[dict]) -> dict[int, dict]:
    """A retried request has several builds on its slot; the last one is the slot's result."""
    last: dict[int, dict] = {}
    for build in sorted(builds, key=lambda b: b["buildid"]):
        last[build["builderid"]] = build
    return last


@implementer(interfaces.IReportGenerator)
class ReleaseChangesGenerator:
    """One report per completed buildset: the slots whose verdict changed, and infra errors."""

    wanted_event_keys = [("buildsets", None, "complete")]

    def generate_name(self):
        return "ReleaseChangesGenerator"

    def check(self):
        pass

    @defer.inlineCallbacks
    def generate(self, master, reporter, key, message):
        details = yield reporter_utils.getDetailsForBuildset(master, message["bsid"], want_properties=True)
        builds = details["builds"]
        if builds and max(builds, key=lambda b: (b["complete_at"] or 0, b["buildid"]))["masterid"] != master.masterid:
            # Every master of a cluster hears of the buildset: the one that ran its last build reports it.
            return None
        package = next((history.property_value(b, "package") for b in builds if history.property_value(b, "package")), None)
        if not package or not maintainers.PACKAGE_NAME.match(package):
            return None  # not a release (for example a buildset with no build)
        version = untrusted.line(next((history.property_value(b, "version") for b in builds
                                       if history.property_value(b, "version")), ""), 200)
        infra = [b for b in builds if is_infra(b)]
        last = {builderid: b for builderid, b in _last_build_per_slot(builds).items() if not is_infra(b)}
        previous = yield history.previous_verdicts(master, package, {i: b["buildid"] for i, b in last.items()})
        changes = []
        for builderid, build in sorted(last.items(), key=lambda item: item[1]["builder"]["name"]):
            before = previous.get(builderid)
            kind = classify(build["results"], before["results"] if before else None)
            if kind is None:
                continue
            changes.append(
                SlotChange(
                    slot=build["builder"]["name"],
                    kind=kind,
                    outcome=history.property_value(build, "outcome") or statusToString(build["results"]),
                    previous=(history.property_value(before, "outcome") or statusToString(before["results"])) if before else "",
                    previous_version=history.property_value(before, "version", "") if before else "",
                    reason=history.property_value(build, "reason") or "",
                    reproduce=history.property_value(build, "reproduce") or "",
                    url=build["url"],
                    because=history.property_value(build, "because") or "",
                )
            )
        if not changes and not infra:
            return None
        infra_lines = [
            {"slot": b["builder"]["name"], "state": untrusted.line(b["state_string"] or "", 300),
             "status": statusToString(b["results"]), "url": b["url"]}
            for b in sorted(infra, key=lambda b: b["buildid"])
        ]
        return {
            "package": package, "version": version, "changes": changes, "infra": infra_lines,
            # What MailNotifier's own code expects of a report; our sendMessage reads the keys above.
            "body": "", "subject": "", "type": "plain", "results": 0, "builds": builds, "users": [],
            "patches": [], "logs": [], "worker": None,
        }


class MaintainerMail(MailNotifier, StateMixin):
    """Sends the reports of ReleaseChangesGenerator: per maintainer, per release, or as a digest."""

    name = SERVICE_NAME

    def checkConfig(self, settings: Settings, registry: maintainers.Registry, secret: bytes):
        mail = settings.mail
        super().checkConfig(fromaddr=mail.sender, **_smtp(mail), generators=[ReleaseChangesGenerator()])

    @defer.inlineCallbacks
    def reconfigService(self, settings: Settings, registry: maintainers.Registry, secret: bytes):
        mail = settings.mail
        yield super().reconfigService(fromaddr=mail.sender, **_smtp(mail), generators=[ReleaseChangesGenerator()])
        self.mail_settings = mail
        self.title = settings.title
        self.base_url = settings.buildbot_url
        self.pypi_url = settings.pypi.url
        self.pypi_timeout = settings.pypi.timeout
        self.user_agent = settings.pypi.user_agent
        self.secret = secret
        self.registry = registry
        self.registry_stamp = _stamp(mail.maintainers_file)
        if getattr(self, "digest_timer", None) is not None and self.digest_timer.running:
            self.digest_timer.stop()
        self.digest_timer = task.LoopingCall(self.send_digests)
        if self.running:
            self.digest_timer.start(mail.digest_interval, now=False)

    @defer.inlineCallbacks
    def startService(self):
        yield super().startService()
        yield self.master.db.pool.do_with_transaction(create_tables)
        yield self.master.db.pool.do_with_transaction(recipients.create_tables)
        # The queue was kept in Buildbot's state before it had a table: moved over once.
        old = yield self.getState("pending", {})
        if old:
            for address, entries in old.items():
                yield self.master.db.pool.do_with_transaction(queue_entries, address, entries, int(time.time()))
            yield self.setState("pending", {})
        timer = getattr(self, "digest_timer", None)
        if timer is not None and not timer.running:
            timer.start(self.mail_settings.digest_interval, now=False)

    @defer.inlineCallbacks
    def stopService(self):
        timer = getattr(self, "digest_timer", None)
        if timer is not None and timer.running:
            timer.stop()
        yield super().stopService()

    # -- who ------------------------------------------------------------------------------------
    def current_registry(self) -> maintainers.Registry:
        """The registry from the last reconfig, or newer where the file changed since (an unsubscribe)."""
        stamp = _stamp(self.mail_settings.maintainers_file)
        if stamp != self.registry_stamp:
            try:
                self.registry = maintainers.load(self.mail_settings.maintainers_file)
                self.registry_stamp = stamp
            except Exception as error:  # a half-edited file: keep mailing the last good registry
                log.msg(f"{self.name}: keeping the previous registry: {error}")
        return self.registry

    def recipients(self, package: str) -> list[tuple[str, bool]]:
        """[(address, wants a digest)] registered for the package (confirmed addresses among them),
        at most `mail.max_recipients`; the others are logged, not mailed."""
        found = [(r.address, r.digest) for r in self.current_registry().for_package(package)]
        limit = self.mail_settings.max_recipients
        if len(found) > limit:
            log.msg(f"{self.name}: {package} has {len(found)} registered addresses; mailing the first {limit} "
                    f"(mail.max_recipients), not {', '.join(a for a, _ in found[limit:])}")
        return found[:limit]

    @defer.inlineCallbacks
    def ask_to_confirm(self, package: str):
        """Ask the addresses of the package's metadata on PyPI, once each, whether they want its mail."""
        registry = self.current_registry()
        candidates, refused = recipients.from_metadata((yield self.pypi_metadata(package)))
        if refused:
            log.msg(f"{self.name}: no address of {package}'s metadata is asked to confirm: {refused[0]}")
        known = {recipients.mailbox(r.address) for r in registry.for_package(package)}
        asked = yield self.master.db.pool.do_with_transaction(recipients.asked, package)
        # Those asked count, answered or not: a project's metadata naming three new strangers at
        # each release asks no more than max_recipients in a year.
        room = self.mail_settings.max_recipients - len(known | asked)
        for address in candidates:
            if recipients.mailbox(address) in known | asked or registry.opted_out(package, address):
                continue
            if room <= 0:
                log.msg(f"{self.name}: {package} has had its {self.mail_settings.max_recipients} addresses asked "
                        f"or registered; {address} of its metadata is not asked")
                break
            allowed = yield self.master.db.pool.do_with_transaction(
                recipients.ask, address, package, int(time.time()), self.mail_settings.max_questions_per_day)
            if not allowed:
                log.msg(f"{self.name}: {address} of {package}'s metadata is not asked now: it was asked for "
                        f"another project this week, or the farm asked its mail.max_questions_per_day today")
            else:
                room -= 1
                yield self._render_and_send(address, "confirm", dict(
                    package=package, base_url=self.base_url, page=package_page_url(self.base_url, package),
                    confirm_url=maintainers.signed_url(self.base_url, self.secret, package, address, maintainers.CONFIRM)))

    @defer.inlineCallbacks
    def pypi_metadata(self, package: str):
        """The package's JSON on PyPI (None when it does not answer)."""
        session = httpclientservice.HTTPSession(
            self.master.httpservice, self.pypi_url.rstrip("/"), headers={"User-Agent": self.user_agent}
        )
        try:
            response = yield session.get(f"/pypi/{package}/json", timeout=self.pypi_timeout)
            if response.code != 200:
                return None
            return (yield response.json())
        except Exception as error:
            log.msg(f"{self.name}: no maintainer addresses from {self.pypi_url} for {package}: {error}")
            return None

    def _budget(self, address: str, package: str, kind: str):
        """Deferred True when `address` may have one more mail today (and it is counted)."""
        return self.master.db.pool.do_with_transaction(
            recipients.take, address, package, kind, int(time.time()), self.mail_settings.max_mails_per_address)

    # -- sending --------------------------------------------------------------------------------
    @defer.inlineCallbacks
    def sendMessage(self, reports):
        for report in reports:
            package, version = report["package"], report["version"]
            if report["infra"] and self.mail_settings.operators:
                # A release that hangs at every upload must not flood the operators either.
                operators = []
                for address in self.mail_settings.operators:
                    if (yield self._budget(address, package, "operators")):
                        operators.append(address)
                if len(operators) < len(self.mail_settings.operators):
                    log.msg(f"{self.name}: the infrastructure error of {package} {version} is not mailed to the "
                            f"operators who had their mail.max_mails_per_address today")
                if operators:
                    message = yield self._render("operators", dict(package=package, version=version,
                                                                   infra=report["infra"]))
                    yield self._send(operators, message["subject"], message["body"])
            if not report["changes"]:
                continue
            for address, digest in self.recipients(package):
                if digest:
                    yield self._queue_for_digest(address, package, version, report["changes"])
                elif (yield self._budget(address, package, "release")):
                    yield self._send_release_mail(address, package, version, report["changes"])
                else:
                    log.msg(f"{self.name}: {address} had its {self.mail_settings.max_mails_per_address} mails "
                            f"today (mail.max_mails_per_address): {package} {version} waits for its digest")
                    yield self._queue_for_digest(address, package, version, report["changes"])
            if self.mail_settings.pypi_addresses:
                yield self.ask_to_confirm(package)

    def _send_release_mail(self, address: str, package: str, version: str, changes: list[SlotChange]):
        kinds = [c.kind_text for c in changes]
        if len(changes) == 1:
            summary = f"{kinds[0]} on {changes[0].slot}"
        else:
            counts = ", ".join(f"{kinds.count(k)} {k}" for k in dict.fromkeys(kinds))
            summary = f"{len(changes)} slots changed ({counts})"
        causes = list(dict.fromkeys(c.because.split(" (was ")[0] for c in changes if c.because))
        if causes:
            summary += f" after {', '.join(causes)}"
        return self._render_and_send(address, "release", dict(
            package=package, version=version, changes=changes, summary=summary,
            packages=[self._package_links(package, address)]), unsubscribe=self._unsubscribe(package, address))

    def _package_links(self, package: str, address: str, changes=()) -> dict:
        return {"name": package, "page": package_page_url(self.base_url, package),
                "unsubscribe": self._unsubscribe(package, address), "changes": list(changes)}

    def _unsubscribe(self, package: str, address: str) -> str:
        return maintainers.unsubscribe_url(self.base_url, self.secret, package, address)

    def _render(self, template: str, context: dict):
        """{"subject", "body"} of master/templates/mail/TEMPLATE.txt, by Buildbot's MessageFormatter."""
        return mail_formatter(template).render_message_dict(self.master, dict(context, title=self.title))

    @defer.inlineCallbacks
    def _render_and_send(self, address: str, template: str, context: dict, unsubscribe: str | None = None):
        message = yield self._render(template, context)
        yield self._send([address], message["subject"], message["body"], unsubscribe=unsubscribe)

    @defer.inlineCallbacks
    def _send(self, recipients: list[str], subject: str, body: str, unsubscribe: str | None = None):
        message = EmailMessage(policy=POLICY)
        message["From"] = self.fromaddr
        message["To"] = ", ".join(recipients)
        message["Subject"] = untrusted.line(subject, 300)
        message["Date"] = email.utils.formatdate(localtime=True)
        message["Message-ID"] = email.utils.make_msgid(domain="pypi-test-farm")
        message["X-PyPI-Test-Farm"] = "yes"
        if unsubscribe:
            # RFC 8058: a mail client unsubscribes with one POST to the link, no page to click through.
            message["List-Unsubscribe"] = f"<{unsubscribe}>"
            message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        message.set_content(body.strip("\n") + "\n")
        try:
            yield self.sendMail(message, recipients)
        except Exception as error:
            log.err(error, f"{self.name}: could not send {subject!r} to {recipients}")

    # -- digests --------------------------------------------------------------------------------
    def _queue_for_digest(self, address: str, package: str, version: str, changes: list[SlotChange]):
        entries = [dict(package=package, version=version, **dataclasses.asdict(c)) for c in changes]
        return self.master.db.pool.do_with_transaction(queue_entries, address, entries, int(time.time()))

    @defer.inlineCallbacks
    def send_digests(self):
        try:
            if not cluster.duties_here(self.master):
                return  # another master of the cluster sends them
            pending = yield self.master.db.pool.do_with_transaction(take_entries)
            if not pending:
                return
            registry = self.current_registry()
            for address, entries in sorted(pending.items()):
                # Someone who unsubscribed since gets nothing about that package. (A registration
                # without a digest has entries too, when it had its mails of the day.)
                wanted = {r.package for r in registry.registrations if r.address.lower() == address.lower()}
                entries = [e for e in entries if e["package"] in wanted]
                if entries:
                    yield self._send_digest(address, entries)
        except Exception as error:
            log.err(error, f"{self.name}: sending the digests")

    @defer.inlineCallbacks
    def _send_digest(self, address: str, entries: list[dict]):
        names = list(dict.fromkeys(e["package"] for e in entries))
        fields = [f.name for f in dataclasses.fields(SlotChange)]
        packages = []
        for name in names:
            changes = []
            for entry in (e for e in entries if e["package"] == name):
                change = SlotChange(**{k: entry[k] for k in fields if k in entry})
                changes.append(dict(dataclasses.asdict(change), kind_text=change.kind_text, caused=change.caused,
                                    version=untrusted.line(entry.get("version") or "", 200)))
            packages.append(self._package_links(name, address, changes))
        yield self.master.db.pool.do_with_transaction(recipients.count, address, ", ".join(names), "digest",
                                                      int(time.time()))
        yield self._render_and_send(address, "digest", dict(count=len(entries), packages=packages, names=", ".join(names)),
                                    unsubscribe=self._unsubscribe(names[0], address) if len(names) == 1 else None)


_SUBJECTS = {
    "release": "[{{ title }}] {{ package }} {{ version }}: {{ summary }}",
    "digest": "[{{ title }}] daily digest: {{ count }} changes in {{ names }}",
    "confirm": "[{{ title }}] {{ package }}: mail you when its test results change?",
    "operators": "[{{ title }}] {{ package }} {{ version }}: infrastructure error",
}
_FORMATTERS: dict[str, MessageFormatter] = {}


def mail_formatter(template: str) -> MessageFormatter:
    """The MessageFormatter of master/templates/mail/TEMPLATE.txt, with the shared macros before it."""
    if template not in _FORMATTERS:
        text = (TEMPLATES / "_macros.txt").read_text(encoding="utf-8") + (TEMPLATES / f"{template}.txt").read_text(
            encoding="utf-8")
        _FORMATTERS[template] = MessageFormatter(template=text, subject=_SUBJECTS[template], template_type="plain")
    return _FORMATTERS[template]


def _smtp(mail: MailSettings) -> dict:
    password = None
    if mail.smtp_password_env:
        password = os.environ.get(mail.smtp_password_env)
    if password is None and mail.smtp_password_file:
        try:
            password = mail.smtp_password_file.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            password = None
    return {
        "relayhost": mail.relay_host,
        "smtpPort": mail.relay_port,
        "useTls": mail.use_tls,
        "smtpUser": mail.smtp_user or None,
        "smtpPassword": password,
        "sendToInterestedUsers": False,
    }


def _stamp(path):
    try:
        status = os.stat(path)
        return (status.st_mtime_ns, status.st_size)
    except FileNotFoundError:
        return None


class OperatorMail(MailNotifier):
    """Tells the operators when a worker has been away for `[mail] worker_missing_after` seconds
    (Buildbot's missing-worker report; each worker names the operators in notify_on_missing)."""

    name = "operator-mail"

    def checkConfig(self, mail: MailSettings):
        super().checkConfig(fromaddr=mail.sender, **_smtp(mail), generators=[WorkerMissingGenerator(workers="all")])

    @defer.inlineCallbacks
    def reconfigService(self, mail: MailSettings):
        yield super().reconfigService(fromaddr=mail.sender, **_smtp(mail),
                                      generators=[WorkerMissingGenerator(workers="all")])

    def sendMessage(self, reports):
        if not cluster.duties_here(self.master):
            return None  # every master of a cluster hears of the missing worker: one tells
        return super().sendMessage(reports)


def missing_worker_notice(mail: MailSettings) -> dict:
    """The Worker arguments that make Buildbot report a worker gone missing to the operators."""
    if not (mail.enabled and mail.operators):
        return {}
    return {"notify_on_missing": list(mail.operators), "missing_timeout": mail.worker_missing_after}


def mail_services(settings: Settings) -> list:
    """The mail reporters for c['services'], when `mail.enabled`."""
    if not settings.mail.enabled:
        return []
    registry = maintainers.load(settings.mail.maintainers_file)
    secret = maintainers.unsubscribe_secret(settings.secrets_dir)
    return [MaintainerMail(settings, registry, secret)] + ([OperatorMail(settings.mail)] if settings.mail.operators else [])
