"""The ASGI entry point (`gunicorn fieldsync.asgi`). It defaults to the production settings: a server
started without DJANGO_SETTINGS_MODULE fails closed (no debug pages, no development keys) instead of open. Local
development starts through manage.py (`make run`), which defaults to fieldsync.settings.base.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fieldsync.settings.production")
application = get_asgi_application()

from fieldsync.checks import refuse_to_start_if_unsafe  # noqa: E402 - needs the settings loaded above

refuse_to_start_if_unsafe()
