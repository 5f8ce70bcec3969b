"""`make run` (master/run.py): what the master and the local worker are started with."""

from master import run
from master.settings import ROOT


def test_the_local_worker_gets_the_allowed_variables_and_no_secret():
    environ = {
        "PATH": "/usr/bin", "HOME": "/home/farm", "LANG": "C.UTF-8", "SSL_CERT_FILE": "/etc/ca.pem",
        "FARM_ADMIN_PASSWORD": "s3cret", "FARM_SMTP_PASSWORD": "s3cret2", "AWS_SECRET_ACCESS_KEY": "key",
        "PIP_INDEX_URL": "http://elsewhere/simple", "PYTHONPATH": "/somewhere",
    }
    assert run.worker_environment(environ) == {
        "PATH": "/usr/bin", "HOME": "/home/farm", "LANG": "C.UTF-8", "SSL_CERT_FILE": "/etc/ca.pem",
        "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1",
    }
    assert not any(name.startswith("FARM_") for name in run.WORKER_ENVIRONMENT)


def test_the_master_keeps_its_own_environment():
    env = run.master_environment({"PATH": "/usr/bin", "FARM_ADMIN_PASSWORD": "s3cret"})
    assert env == {"PATH": "/usr/bin", "FARM_ADMIN_PASSWORD": "s3cret", "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
