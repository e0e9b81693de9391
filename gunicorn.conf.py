"""gunicorn reads this file from the directory it starts in (`gunicorn fieldsync.wsgi`).

The access log, when enabled (--access-logfile), records the path without its query string: QuickBooks sends the
single-use OAuth `code` to /quickbooks/callback/ in the query string, and it must never land in a log. The rest is
gunicorn's default format. Django's own loggers are redacted by fieldsync.log_filters.
"""

access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s "-" "%(a)s"'
