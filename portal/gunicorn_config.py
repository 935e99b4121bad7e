"""gunicorn's settings for the portal (`gunicorn -c python:portal.gunicorn_config ...`).

The access log names the path only: query strings carry patient names, IDs and UIDs
(`/worklist?q=Smith`, QIDO searches), and so does the Referer header, so neither is
logged. `%(U)s` is the path without its query string.
"""

accesslog = "-"
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(D)sus'
