"""The one table from the runner's outcomes to Buildbot results, used everywhere: the contract's
table (farm_runner/contract.py) in Buildbot's constants."""

from buildbot.process.results import Results
from farm_runner import contract

RESULTS = {outcome: Results.index(name) for outcome, name in contract.BUILDBOT_RESULT.items()}

# Outcomes the install phase can settle for good: the later phases have nothing to do.
SETTLED_BY_INSTALL = contract.SETTLED_BY_INSTALL
