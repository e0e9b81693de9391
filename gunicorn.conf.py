"""gunicorn reads this file from the directory it starts in (`gunicorn fieldsync.wsgi`).

The access log, when enabled (--access-logfile), records the path without its query string: QuickBooks sends the
single-use OAuth `code` to /quickbooks/callback/ in the query string, and it must never land in a log. The rest is
gunicorn's default format. Django's own loggers are redacted by fieldsync.log_filters.

Workers: gthread, a few threads per process (GUNICORN_THREADS, default 4), and one process per core
(`--workers` / WEB_CONCURRENCY, deploy/). A request spends much of its time waiting for PostgreSQL (its commit waits
for the disk); threads let one process serve other requests meanwhile, and unlike sync workers they keep a client's
HTTP/1.1 connection open between requests (`keepalive` seconds), so an API client posting payment after payment does
not pay a TCP handshake each time. Each thread keeps its own database connection (CONN_MAX_AGE), so PostgreSQL sees
workers x threads connections per machine. docs/BENCHMARKS.md ("Posting payments through the API") has the figures.
"""

import os

access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s "-" "%(a)s"'
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gthread")
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
# Longer than gunicorn's 2 s default: an API client between two requests, or a proxy reusing its upstream connections.
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
