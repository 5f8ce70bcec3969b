"""A Django app whose tests could not run for want of settings its release does not ship (the
project's runtests.py or settings module is left out of the sdist): the app is set up in minimal
settings of the farm's, in one fresh process in the sandbox, offline, and its URLconf imported;
where the app wants more than minimal settings, its modules are read for the names their
module-level `from django... import` asks of the Django installed.

Only one thing counts: a module of the release's own that does not import against the Django
installed, for a name Django removed or a module it lacks (`from django.conf.urls import patterns`
on Django 1.11; `python_2_unicode_compatible` on 3.0). That fails with any settings, so it is the
package's failure. Anything else this check meets says nothing (the project's settings may differ
from the farm's). The host decides from the exit status and from where the import failed, which
must be a file of the release's own in site-packages; the process's words can only make the
verdict worse, never better.
"""

import json
import os
import re

# Runs in the package's interpreter (2.7 on), its app names as arguments.
CODE = r'''
import ast, json, os, sys, traceback
from django.conf import settings
apps = sys.argv[1:]
settings.configure(
    DEBUG=True, SECRET_KEY="farm-minimal-settings", ALLOWED_HOSTS=["*"], USE_TZ=True,
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes", "django.contrib.sessions",
                    "django.contrib.messages", "django.contrib.admin"] + apps,
    TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True, "OPTIONS": {}}])
def said(kind, error, where):
    print("FARM-DJANGO-CHECK " + json.dumps({"error": "%s: %s" % (kind, error[:300]), "kind": kind, "file": where}))
    sys.stdout.flush()
    os._exit(3)
# The modules Django itself loads of an app (its setup, the admin, URL resolution), read: a name
# their module-level `from django... import` asks of the Django installed that it does not have (a
# name it removed) fails whatever the settings.
LOADED = ("__init__.py", "apps.py", "models.py", "admin.py", "urls.py", "views.py")
def removed_names(app):
    module = __import__(app, fromlist=["__name__"])
    top = os.path.dirname(getattr(module, "__file__", None) or "")
    files = []
    for folder, dirs, names in os.walk(top):
        dirs[:] = [d for d in dirs if d not in ("tests", "test", "migrations")]
        files += [os.path.join(folder, n) for n in sorted(names) if n in LOADED]
    for path in files[:200]:
        try:
            with open(path, "rb") as fh:
                tree = ast.parse(fh.read(), path)
        except Exception:
            continue
        for node in tree.body:
            if not (isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").startswith("django.")):
                continue
            try:
                source = __import__(node.module, fromlist=["__name__"])
            except Exception:
                continue  # it needs settings, or more: says nothing
            for alias in node.names:
                if alias.name == "*" or hasattr(source, alias.name):
                    continue
                try:
                    __import__(node.module + "." + alias.name)
                except Exception:
                    said("ImportError", "cannot import name '%s' from '%s'" % (alias.name, node.module), path)
import django
try:
    if hasattr(django, "setup"):
        django.setup()
    for app in apps:
        module = __import__(app, fromlist=["__name__"])
        folder = os.path.dirname(getattr(module, "__file__", None) or "")
        if folder and os.path.isfile(os.path.join(folder, "urls.py")):
            __import__(app + ".urls")
except (ImportError, SyntaxError) as exc:
    tb = traceback.extract_tb(sys.exc_info()[2])
    said(type(exc).__name__, str(exc), getattr(exc, "filename", None) if isinstance(exc, SyntaxError)
         else (tb[-1][0] if tb else None))
except Exception:
    pass  # the app wants more than minimal settings (a backend, a setting of its own): read it instead
for app in apps:
    try:
        removed_names(app)
    except Exception:
        pass
os._exit(0)
'''
MARK = "FARM-DJANGO-CHECK "
FAILED = 3
COUNTED = ("ImportError", "ModuleNotFoundError", "SyntaxError")
NOT_APPS = ("settings", "manage", "conftest", "setup")


def apps(import_names, not_the_package):
    """The release's import names that can be Django apps (its own packages, no settings module)."""
    return [n for n in import_names if n not in not_the_package and n not in NOT_APPS and not n.startswith("_")][:5]


def command(python_and_flags, app_names):
    return list(python_and_flags) + ["-c", CODE] + list(app_names)


def verdict(rc, output, site, own_names):
    """The sentence saying which of the release's modules does not import against the Django
    installed, or None when the check found nothing that counts (see the module docstring)."""
    if rc != FAILED:
        return None
    said = None
    for line in (output or "").splitlines():
        if line.startswith(MARK):
            try:
                said = json.loads(line[len(MARK):])
            except ValueError:
                return None
    if not isinstance(said, dict) or said.get("kind") not in COUNTED or not isinstance(said.get("file"), str):
        return None
    where = os.path.normpath(said["file"])
    own = [os.path.join(site, n) for n in own_names]
    if not any(where == o + ".py" or where.startswith(o + os.sep) for o in own):
        return None  # raised elsewhere (a dependency, Django itself): not shown to be the release's
    error = re.sub(r" \((?:from )?/[^)]*\)", "", str(said.get("error")))  # the host's paths say nothing
    return "%s (in %s)" % (error[:200], os.path.relpath(where, site))
