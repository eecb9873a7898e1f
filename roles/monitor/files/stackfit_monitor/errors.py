"""Exit codes, the three errors a run can meet, and the log line every module writes."""
import sys

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CONFIG = 2
EXIT_OUTPUT = 3


class ConfigError(Exception):
    """The configuration is unusable; the message names the key and the value."""


class OutputError(Exception):
    """The output directory or one of its files cannot be written."""


class RedisError(Exception):
    """Redis could not be reached or answered with an error."""


class MalformedReplyError(RedisError):
    """Redis answered something this client cannot read: the reply is skipped and counted."""


def log(message):
    sys.stderr.write("stackfit-monitor: %s\n" % message)
    sys.stderr.flush()


def is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)
