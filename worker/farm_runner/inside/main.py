"""Entry of the work done inside the sandbox: `python -I -S -c BOOTSTRAP LIB TASK FD ARGS...`
(host/sandbox.py). Each task writes its answer as JSON to FD, a pipe to the supervisor that no
other process holds, and closes it before anything of the package's runs; the supervisor still
reads the answer as untrusted data (it describes the package's trees).

    forward SOCKET PORT -- CMD...   the network forwarder, in front of an install command (no FD)
    stage OUT                       the installed distributions; unpack the sdist, find the tests, stage
                                    them (its request in OUT/request.json); then, when nothing is to
                                    install first, run them (exec: the exit status is pytest's)
    audit ENV SITE PTH PYTHON NAMES -- CMD
                                    run the uninstall CMD, list the environment's files and
                                    distributions, then become the check of which of NAMES (JSON)
                                    PYTHON (JSON: the interpreter and its flags) still finds (exec:
                                    its output is the command's)
"""
import json
import os
import sys


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    task, args = argv[0], argv[1:]
    if task == "forward":
        from farm_runner.inside import forward
        return forward.main(args)
    fd, args = int(args[0]), args[1:]
    if task == "audit":
        from farm_runner.inside import environment
        env, site, pth, python, names, own, separator = args[:7]
        assert separator == "--"
        return environment.audit(env, site, pth, json.loads(python), json.loads(names), args[7:],
                                 lambda result: answer(fd, result), own_before=None if own == "-" else own)
    if task == "stage":
        from farm_runner.inside import stage
        (out,) = args
        with open(os.path.join(out, "request.json"), encoding="utf-8") as fh:
            request = json.load(fh)
        return stage.run_tests(request, stage.stage(request), lambda result: answer(fd, result))
    sys.stderr.write("unknown task %r\n" % task)
    return 2


def answer(fd, result):
    """Send the answer and close the pipe: whatever runs after this cannot speak for the runner."""
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(result, fh)
    return 0
