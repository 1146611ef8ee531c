"""deconv.settings as production runs them, for the web server the fault tests start.

One difference: static files are served from the source folders (StaticFilesStorage), so the
test needs no collectstatic run, which compresses every file and costs over a minute on the CI
machine. Everything else (DEBUG off, middleware, templates, error pages) is production's.
"""

from deconv.settings import *  # noqa: F403
from deconv.settings import STORAGES

STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
