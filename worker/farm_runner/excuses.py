"""The failures that are not the package's: each class once, with the evidence that admits a
failure to it and the words the report, the page and the mail say of it. The runner's supervisor
sorts failures into these classes; the master shows them. Standard library only (the master
imports it as `farm_runner.excuses`, the runner from its bundle).

Modelled on crater's FailureReason and its is_spurious(): a failure is excused only on evidence
the runner gathered itself, never because of what the failure's message says. A class's report
field holds [{"test", <detail>: ...}] of the tests it excused.
"""

import collections

# field: the report's; detail: the key of each entry's detail; evidence: what admits a failure;
# said: the reason's words for N of them; each: the page's words for one ("%s": its detail).
Excuse = collections.namedtuple("Excuse", "field detail evidence said each")

EXCUSES = (
    Excuse("needs_network", "tried",
           "the probe plugin saw the test connect beyond loopback, look up a name other than the sandbox's "
           "own, or start an installer's install or git's clone or fetch; the sandbox has no network",
           "%d needed the network, which the sandbox does not give", "tried %s"),
    Excuse("interpreter_lacks", "module",
           "the interpreter under test lists the module as its own standard library and cannot find it, "
           "asked by the runner on the host (a module the language removed or never had is no excuse)",
           "%d needed a standard module this worker's Python was built without (%s)",
           "needs %s, missing from this worker's Python"),
    Excuse("needs_service", "service",
           "the probe plugin saw the test's connection to a loopback port refused: a port below the ephemeral "
           "range (never a server of the moment, such as one of the host's), that no socket of the test's process "
           "had bound or tried to, from a test that had started no program, process or thread (whose own server "
           "may have died): a server the project's CI runs beside its tests (a database, a broker); or its "
           "connection to a system daemon's socket (DAEMON_SOCKETS: Docker's, a database's) that the sandbox "
           "does not give, by any of its processes",
           "%d needed a service this worker does not run (%s)", "connects to %s, where nothing runs in the sandbox"),
    Excuse("needs_credentials", "variable",
           "the probe plugin saw the test read an environment variable named as a credential (an API key, a "
           "token, a password) that the run did not set, and then fail with an error raised, not an assertion "
           "or a pytest.fail of its own; run again by the runner with a placeholder in each, it went on to reach "
           "for the network (the service the credential is for): an account of the project's CI "
           "(its secrets), which the farm never has",
           "%d needed credentials the farm does not have (%s)", "reads %s, which the farm does not set"),
    Excuse("lacks_program", "program",
           "the probe plugin saw the test start a program that is not found, and the runner found it on "
           "none of the sandbox's PATH folders",
           "%d needed a program this worker lacks (%s)", "needs the program %s, which this worker lacks"),
    Excuse("sdist_lacks", "path",
           "the file or folder the test could not find is of the project's tree and absent from the sdist, "
           "by the runner's own listing of the sdist made before any of the package's code ran",
           "%d read or wrote files of the project's tree that the sdist does not ship (%s)",
           "reads or writes %s, which the sdist does not ship"),
    Excuse("needs_configuration", "setting",
           "the probe plugin saw the test's exception raised inside Django's settings module while no settings "
           "had been made (DJANGO_SETTINGS_MODULE unset, settings.configure() never called), and the runner "
           "found Django installed as a distribution other than the release and gave the run no settings: the "
           "project runs these tests inside a Django project (a runtests.py, a settings module) its sdist leaves out",
           "%d needed %s, which the release does not ship", "needs %s, which the release does not ship"),
    Excuse("flaky", None,
           "it failed, then passed when the runner ran it again (the exit status, seen by the runner)",
           "%d failed once and passed when run again (flaky)", "failed once, passed when run again"),
)
FIELDS = tuple(e.field for e in EXCUSES)

# The system daemons' sockets a test may connect to (moto's Lambda asks Docker's, through
# docker-py or curl): none is in the sandbox, which gives nothing of the host's /run or /var/run,
# and no command of the package's can make one there. A failed connection to one is needs_service.
DAEMON_SOCKETS = {
    "/var/run/docker.sock": "a Docker daemon", "/run/docker.sock": "a Docker daemon",
    "/run/podman/podman.sock": "a Podman service", "/run/containerd/containerd.sock": "containerd",
    "/var/run/postgresql/.s.PGSQL.5432": "a PostgreSQL server", "/run/postgresql/.s.PGSQL.5432": "a PostgreSQL server",
    "/var/run/mysqld/mysqld.sock": "a MySQL server", "/run/mysqld/mysqld.sock": "a MySQL server",
    "/var/run/dbus/system_bus_socket": "the D-Bus system bus", "/run/dbus/system_bus_socket": "the D-Bus system bus",
}
UNIX = "unix:"  # how the probe names a socket path among its services ("unix:/var/run/docker.sock")


def service_name(where):
    """The words for a service the probe saw a test need: "127.0.0.1:6379", or a daemon's socket
    ("a Docker daemon at /var/run/docker.sock"); None for a socket that is no daemon's."""
    if not where.startswith(UNIX):
        return where
    path = where[len(UNIX):]
    return "%s at %s" % (DAEMON_SOCKETS[path], path) if path in DAEMON_SOCKETS else None


def is_spurious(field):
    """Is a failure of this class the environment's, not the package's? (Every class here is.)"""
    return field in FIELDS


def _names(entries, detail):
    shown = sorted({str(e.get(detail)) for e in entries if isinstance(e, dict) and e.get(detail)})
    return ", ".join(shown[:3]) + (", ..." if len(shown) > 3 else "")


def sentences(tests):
    """["2 needed the network, ...", ...] for the excused failures of a report's "tests"."""
    out = []
    totals = (tests or {}).get("excused_counts")
    totals = totals if isinstance(totals, dict) else {}
    for e in EXCUSES:
        entries = (tests or {}).get(e.field) or []
        if entries:
            n = totals.get(e.field) if isinstance(totals.get(e.field), int) and totals[e.field] >= len(entries) \
                else len(entries)  # the report lists a class's first tests only
            out.append(e.said % ((n, _names(entries, e.detail)) if "%s" in e.said else n))
    return out


def not_counted(tests):
    """The excused failures as a sentence said with every outcome ("" if none)."""
    said = sentences(tests)
    return " Not counted: %s." % "; ".join(said) if said else ""


def each_test(tests):
    """[(test, what the page says of it)] for the excused failures of a report's "tests"."""
    out = []
    for e in EXCUSES:
        for entry in (tests or {}).get(e.field) or []:
            if isinstance(entry, str):  # flaky: the test ids themselves
                out.append((entry, e.each))
            elif isinstance(entry, dict) and entry.get("test"):
                detail = entry.get(e.detail)
                detail = ", ".join(str(d) for d in detail) if isinstance(detail, list) else str(detail)
                out.append((str(entry["test"]), e.each % detail if "%s" in e.each else e.each))
    return out
