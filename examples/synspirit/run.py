"""The WSGI entry point: `gunicorn run:app` from this directory."""
import logging

from app import create_app

app = create_app()

# Under gunicorn, the app's own log lines go where gunicorn's error log goes.
_gunicorn_log = logging.getLogger("gunicorn.error")
if _gunicorn_log.handlers:
    logging.getLogger("synspirit").handlers = _gunicorn_log.handlers
    logging.getLogger("synspirit").setLevel(_gunicorn_log.level)

if __name__ == "__main__":
    app.run(host="127.0.0.1", port=5000)
