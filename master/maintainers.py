"""The registry of who wants mail for which package, and its command line.

The registry is a TOML file named by `mail.maintainers_file` (git-ignored `var/maintainers.toml`
by default):

    [[maintainers]]
    package = "six"
    address = "maintainer@example.org"
    digest = false          # true: one mail a day summarising the changes, instead of one per release

    [[opt_out]]             # written by the unsubscribe link: never mail this address for this package,
    package = "six"         # not even from the package's own metadata on PyPI (mail.pypi_addresses)
    address = "someone@example.org"

The master reads it on start and on `buildbot reconfig`; the unsubscribe link edits it at once.

    python -m master.maintainers add six maintainer@example.org [--digest]
    python -m master.maintainers remove six maintainer@example.org
    python -m master.maintainers list [six]

(`--config` or $FARM_CONFIG names the settings file, as for the master.)
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import hashlib
import hmac
import json
import os
import re
import sys
import tomllib
import urllib.parse
from pathlib import Path

from packaging.utils import canonicalize_name

from master.secrets import read_or_create
from master.settings import ADDRESS, SettingsError

UNSUBSCRIBE_KEY_FILE = "unsubscribe.key"
PACKAGE_NAME = re.compile(r"^([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9])$")


@dataclasses.dataclass(frozen=True)
class Registration:
    package: str  # normalised
    address: str
    digest: bool = False


@dataclasses.dataclass(frozen=True)
class Registry:
    registrations: tuple[Registration, ...] = ()
    opt_outs: frozenset[tuple[str, str]] = frozenset()

    def for_package(self, package: str) -> list[Registration]:
        package = canonicalize_name(package)
        return [r for r in self.registrations if r.package == package]

    def opted_out(self, package: str, address: str) -> bool:
        return (canonicalize_name(package), address.lower()) in self.opt_outs


def load(path: Path) -> Registry:
    """The registry in `path` (none yet: empty); errors name the file and the entry."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Registry()
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"{path}: not valid TOML ({error}); fix the file and run `buildbot reconfig`.") from None
    unknown = sorted(set(raw) - {"maintainers", "opt_out"})
    if unknown:
        raise SettingsError(f"{path}: '{unknown[0]}' is not known; the tables are [[maintainers]] and [[opt_out]].")
    registrations = []
    for position, entry in enumerate(raw.get("maintainers", [])):
        package, address = _entry(path, f"maintainers[{position}]", entry, {"package", "address", "digest"})
        digest = entry.get("digest", False)
        if not isinstance(digest, bool):
            raise SettingsError(f"{path}: 'maintainers[{position}].digest' must be true or false, not {digest!r}.")
        registrations.append(Registration(package, address, digest))
    opt_outs = set()
    for position, entry in enumerate(raw.get("opt_out", [])):
        package, address = _entry(path, f"opt_out[{position}]", entry, {"package", "address"})
        opt_outs.add((package, address.lower()))
    return Registry(tuple(registrations), frozenset(opt_outs))


def _entry(path: Path, where: str, entry, keys: set[str]) -> tuple[str, str]:
    if not isinstance(entry, dict):
        raise SettingsError(f"{path}: '{where}' must be a table with 'package' and 'address'.")
    unknown = sorted(set(entry) - keys)
    if unknown:
        raise SettingsError(f"{path}: '{where}.{unknown[0]}' is not known; an entry has {', '.join(sorted(keys))}.")
    package, address = entry.get("package"), entry.get("address")
    if not isinstance(package, str) or not PACKAGE_NAME.match(package):
        raise SettingsError(f"{path}: '{where}.package' must be a package name, not {package!r}.")
    if not isinstance(address, str) or not ADDRESS.match(address):
        raise SettingsError(f"{path}: '{where}.address' must be a mail address, not {address!r}.")
    return canonicalize_name(package), address


def dumps(registry: Registry) -> str:
    lines = [
        "# Who gets mail from the PyPI test farm for which package (master/maintainers.py).",
        "# Edit with `python -m master.maintainers add|remove`; the master reads it on `buildbot reconfig`.",
    ]
    for entry in sorted(registry.registrations, key=lambda r: (r.package, r.address)):
        lines += ["", "[[maintainers]]", f"package = {json.dumps(entry.package)}",
                  f"address = {json.dumps(entry.address)}", f"digest = {'true' if entry.digest else 'false'}"]
    for package, address in sorted(registry.opt_outs):
        lines += ["", "[[opt_out]]", f"package = {json.dumps(package)}", f"address = {json.dumps(address)}"]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def _locked(path: Path):
    """One writer at a time (the command line and the master's unsubscribe link)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _save(path: Path, registry: Registry) -> None:
    temporary = path.with_name(path.name + ".new")
    temporary.write_text(dumps(registry), encoding="utf-8")
    os.replace(temporary, path)


def add(path: Path, package: str, address: str, digest: bool = False) -> Registration:
    if not PACKAGE_NAME.match(package):
        raise SettingsError(f"{package!r} is not a package name.")
    if not ADDRESS.match(address):
        raise SettingsError(f"{address!r} is not a mail address.")
    entry = Registration(canonicalize_name(package), address, digest)
    with _locked(path):
        registry = load(path)
        kept = [r for r in registry.registrations if (r.package, r.address.lower()) != (entry.package, address.lower())]
        _save(path, Registry(tuple(kept) + (entry,), registry.opt_outs - {(entry.package, address.lower())}))
    return entry


def remove(path: Path, package: str, address: str, opt_out: bool = False) -> bool:
    """Drop the registration; `opt_out` also keeps the address off the package's PyPI addresses."""
    key = (canonicalize_name(package), address.lower())
    with _locked(path):
        registry = load(path)
        kept = tuple(r for r in registry.registrations if (r.package, r.address.lower()) != key)
        opt_outs = registry.opt_outs | {key} if opt_out else registry.opt_outs
        if kept == registry.registrations and opt_outs == registry.opt_outs:
            return False
        _save(path, Registry(kept, opt_outs))
    return True


# -- the signed links: unsubscribe, and confirm an address from the metadata ------------------------------------------------------------------------

def unsubscribe_secret(secrets_dir: Path) -> bytes:
    """The key that signs unsubscribe links, generated once under the secrets folder."""
    return read_or_create(secrets_dir / UNSUBSCRIBE_KEY_FILE).encode()


UNSUBSCRIBE, CONFIRM = "unsubscribe", "confirm"


def token(secret: bytes, package: str, address: str, purpose: str = UNSUBSCRIBE) -> str:
    """The link's signature; a confirmation's differs from an unsubscribe's for the same address."""
    message = f"{canonicalize_name(package)}\0{address.lower()}"
    message = message if purpose == UNSUBSCRIBE else f"{purpose}\0{message}"
    return hmac.new(secret, message.encode(), hashlib.sha256).hexdigest()[:32]


def valid_token(secret: bytes, package: str, address: str, given: str, purpose: str = UNSUBSCRIBE) -> bool:
    return hmac.compare_digest(token(secret, package, address, purpose), given or "")


def signed_url(base_url: str, secret: bytes, package: str, address: str, purpose: str = UNSUBSCRIBE) -> str:
    query = urllib.parse.urlencode(
        {"package": canonicalize_name(package), "address": address, "token": token(secret, package, address, purpose)}
    )
    return f"{base_url}plugins/wsgi_dashboards/packages/{purpose}?{query}"


def unsubscribe_url(base_url: str, secret: bytes, package: str, address: str) -> str:
    return signed_url(base_url, secret, package, address, UNSUBSCRIBE)


# -- the command line ----------------------------------------------------------------------------

def main(argv=None, environ=os.environ) -> int:
    parser = argparse.ArgumentParser(prog="python -m master.maintainers", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", help="the settings file (default: $FARM_CONFIG, else farm.toml)")
    commands = parser.add_subparsers(dest="command", required=True)
    adding = commands.add_parser("add", help="mail ADDRESS when PACKAGE's results change")
    adding.add_argument("package")
    adding.add_argument("address")
    adding.add_argument("--digest", action="store_true", help="one mail a day instead of one per release")
    removing = commands.add_parser("remove", help="stop mailing ADDRESS about PACKAGE")
    removing.add_argument("package")
    removing.add_argument("address")
    listing = commands.add_parser("list", help="the registrations (of PACKAGE only, if given)")
    listing.add_argument("package", nargs="?")
    arguments = parser.parse_args(argv)

    from master import settings as farm_settings

    try:
        path = farm_settings.load(arguments.config, environ).mail.maintainers_file
        if arguments.command == "add":
            entry = add(path, arguments.package, arguments.address, arguments.digest)
            print(f"{entry.address} gets {'a daily digest' if entry.digest else 'mail'} for {entry.package} ({path}).")
        elif arguments.command == "remove":
            if not remove(path, arguments.package, arguments.address):
                print(f"error: {arguments.address} is not registered for {canonicalize_name(arguments.package)} in {path}.",
                      file=sys.stderr)
                return 1
            print(f"{arguments.address} no longer gets mail for {canonicalize_name(arguments.package)} ({path}).")
        else:
            registry = load(path)
            entries = registry.for_package(arguments.package) if arguments.package else registry.registrations
            for entry in sorted(entries, key=lambda r: (r.package, r.address)):
                print(f"{entry.package}\t{entry.address}\t{'digest' if entry.digest else 'each release'}")
            return 0
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print("A running master reads the registry on `buildbot reconfig` (or a restart).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
