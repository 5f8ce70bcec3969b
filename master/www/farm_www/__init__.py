"""The farm's Buildbot UI plugin (www['plugins']['farm']): a script every page of Buildbot's UI
loads (static/scripts.js). It changes two things Buildbot has no setting for:

- names are compared as people read them, numbers by their value: linux-py3.6 before
  linux-py3.10 in the waterfall, the console, the grid, the home page and the lists (the views'
  localeCompare, and the order by name of buildbot-data-js's DataQuery, which the UI exports);
- a visitor who is not logged in sees none of the controls only an admin may use (Rebuild, Stop,
  Cancel, the force forms): Buildbot shows them to everyone and refuses the click.
"""

from buildbot.www.plugin import Application

ep = Application(__name__, "The PyPI test farm's UI: slots in version order, controls for admins only")
