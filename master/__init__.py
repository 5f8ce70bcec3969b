"""The farm's Buildbot master. It imports the runner's contract and interpreter discovery as
`farm_runner` (worker/farm_runner), the one name that package has everywhere."""
import sys
from pathlib import Path

_WORKER = str(Path(__file__).resolve().parent.parent / "worker")
if _WORKER not in sys.path:
    sys.path.insert(0, _WORKER)
