"""synspirit: the sample Flask + Celery application that stackfit deploys.

`create_app` lives in app.web; it is imported on first call so that the Celery worker, which
imports app.celery_utils, does not load Flask.
"""


def create_app(config=None):
    from app.web import create_app as _create_app
    return _create_app(config)
