"""Who the farm may mail, and how much.

A release's metadata is written by whoever uploads it: its `maintainer_email` and `author_email`
may name anyone, forty strangers or a field with a line break and a `Bcc:` in it. So an address
from the metadata (`mail.pypi_addresses`) is only a candidate: it is asked once, in a mail that
carries none of the package's text, to confirm with a signed link, and gets results only once it
has (it is then a registration like those the operator adds). A field that holds a control
character or a display name with an address in it, or metadata naming more than METADATA_MAX
addresses, is refused whole and logged: that is a list, not a project's maintainers.

Every mail is counted in `farm_mail_sent`, shared by the masters of a cluster, by mailbox
(`mailbox`: `Ann+x@Example.org.` is ann@example.org): at most `mail.max_mails_per_address` mails
a day to one mailbox (past it, its changes wait for its digest) and `mail.max_recipients`
addresses per project's release mail. The questions are bounded apart, since one uploader may own
many projects and they must not use up a maintainer's mail of the day: a project has at most
`max_recipients` addresses asked in a year, a mailbox is asked at most once a week whatever the
project, and the farm asks at most `mail.max_questions_per_day` a day.
"""

from __future__ import annotations

import email.utils

import sqlalchemy as sa

from master.settings import ADDRESS

METADATA_FIELDS = ("maintainer_email", "author_email")
METADATA_MAX = 3
DAY = 24 * 3600
# The rows that count mails are dropped after two days; a confirmation asked is kept a year, so
# a candidate is not asked again at every release.
KEEP_COUNTED, KEEP_ASKED = 2 * DAY, 365 * DAY
ASKED = "confirm"
ASK_AGAIN_AFTER = 7 * DAY  # the same address, for another project

metadata = sa.MetaData()
sent_log = sa.Table(
    "farm_mail_sent", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("address", sa.String(320), nullable=False),  # lower case
    sa.Column("package", sa.String(256), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # release, digest, confirm
    sa.Column("sent_at", sa.Integer, nullable=False),
    sa.Index("farm_mail_sent_address", "address", "sent_at"),
    sa.Index("farm_mail_sent_kind", "kind", "sent_at"),
)


def create_tables(conn) -> None:
    metadata.create_all(conn, checkfirst=True)


def from_metadata(data: dict) -> tuple[list[str], list[str]]:
    """(candidate addresses, refusals) of PyPI's JSON for a project: each refusal a sentence."""
    info = (data or {}).get("info") if isinstance(data, dict) else None
    info = info if isinstance(info, dict) else {}
    found: list[str] = []
    for field in METADATA_FIELDS:
        raw = info.get(field)
        if not isinstance(raw, str) or not raw.strip():
            continue
        if any(ord(ch) < 0x20 or 0x7f <= ord(ch) < 0xa0 or ch in "\u2028\u2029" for ch in raw):
            return [], [f"its {field} holds a line break or another control character"]
        for name, address in email.utils.getaddresses([raw]):
            if "@" in name:
                return [], [f"its {field} has an address inside a display name"]
            if not ADDRESS.match(address):
                return [], [f"its {field} holds something that is not a mail address"]
            if address.lower() not in (a.lower() for a in found):
                found.append(address)
    if len(found) > METADATA_MAX:
        return [], [f"its metadata names {len(found)} addresses; more than {METADATA_MAX} is a list, not its maintainers"]
    return found, []


def mailbox(address: str) -> str:
    """The mailbox an address reaches, as far as any mail system agrees: lower case, without a
    `+tag` and a final dot (the budgets count mailboxes, not the spellings of one)."""
    local, _, domain = address.lower().rpartition("@")
    return f"{local.split('+', 1)[0]}@{domain.rstrip('.')}"


def take(conn, address: str, package: str, kind: str, now: int, per_day: int) -> bool:
    """Count one mail to `address` if its mailbox has had fewer than `per_day` in the last day
    (False: not sent). The questions to confirm are not counted here (`ask`)."""
    address = mailbox(address)
    conn.execute(sent_log.delete().where(sa.or_(
        sa.and_(sent_log.c.kind != ASKED, sent_log.c.sent_at < now - KEEP_COUNTED),
        sent_log.c.sent_at < now - KEEP_ASKED)))
    sent = conn.execute(sa.select(sa.func.count()).select_from(sent_log).where(
        sent_log.c.address == address, sent_log.c.kind != ASKED, sent_log.c.sent_at > now - DAY)).scalar()
    if sent >= per_day:
        return False
    count(conn, address, package, kind, now)
    return True


def ask(conn, address: str, package: str, now: int, farm_per_day: int) -> bool:
    """Count a question to `address` about `package` if the farm may ask it now: not if its
    mailbox was asked within ASK_AGAIN_AFTER for any project, nor past `farm_per_day` questions
    of the whole farm in the last day."""
    address = mailbox(address)
    recent = conn.execute(sa.select(sa.func.count()).select_from(sent_log).where(
        sent_log.c.address == address, sent_log.c.kind == ASKED,
        sent_log.c.sent_at > now - ASK_AGAIN_AFTER)).scalar()
    today = conn.execute(sa.select(sa.func.count()).select_from(sent_log).where(
        sent_log.c.kind == ASKED, sent_log.c.sent_at > now - DAY)).scalar()
    if recent or today >= farm_per_day:
        return False
    count(conn, address, package, ASKED, now)
    return True


def count(conn, address: str, package: str, kind: str, now: int) -> None:
    """Count a mail to `address`'s mailbox (a digest, sent whatever the budget: the budget's own way out)."""
    conn.execute(sent_log.insert(), [{"address": mailbox(address), "package": package, "kind": kind, "sent_at": now}])


def asked(conn, package: str) -> set[str]:
    """The mailboxes asked to confirm for `package` in the last year."""
    rows = conn.execute(sa.select(sent_log.c.address).where(sent_log.c.package == package, sent_log.c.kind == ASKED))
    return {row.address for row in rows}
