"""Entry of the work done inside the sandbox: `python -I -S -c BOOTSTRAP LIB TASK ARGS...`
(host/sandbox.py). Each task writes its answer as JSON to OUT/result.json, a file in a folder the
runner made for this command alone; the host reads it as untrusted data.

    forward SOCKET PORT -- CMD...   the network forwarder, in front of an install command
    dists SITE OUT                  the distributions installed in an environment
    stage OUT                       unpack the sdist, find the tests, stage them (request in OUT/request.json)
    audit ENV SITE PTH OUT          after the uninstall: the environment's files and distributions
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
    if task == "dists":
        from farm_runner.inside import environment
        site, out = args
        return answer(out, {"dists": environment.distributions(site)})
    if task == "audit":
        from farm_runner.inside import environment
        env, site, pth, out = args
        return answer(out, environment.audit(env, site, pth))
    if task == "stage":
        from farm_runner.inside import stage
        (out,) = args
        with open(os.path.join(out, "request.json"), encoding="utf-8") as fh:
            request = json.load(fh)
        return answer(out, stage.stage(request))
    sys.stderr.write("unknown task %r\n" % task)
    return 2


def answer(out, result):
    with open(os.path.join(out, "result.json"), "w", encoding="utf-8") as fh:
        json.dump(result, fh)
    return 0
