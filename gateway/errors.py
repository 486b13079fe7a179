"""The gateway's exception tree.

::

    GatewayError
     +-- ConfigError (also ValueError)   a setting is wrong; names the file and the key
     |    +-- ProfileError                a device profile file is wrong
     +-- RecordError (also ValueError)   one PBX record cannot be parsed (never escapes
     |                                    the parser: it becomes an ``unparsed`` event)
     +-- lock.StateDirBusy               another gateway holds the state directory
"""


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose; ``exit_status`` is what
    ``pbxgw`` exits with when one reaches the command line."""

    exit_status = 1


class ConfigError(GatewayError, ValueError):
    """A configuration value is wrong.

    The message is one line a technician can act on: the file, the key path and what
    was expected, e.g. ``site.toml: mqtt.url: expected mqtt:// or mqtts://, got 'http://x'``.

    :param path: the file (or other origin) the value came from.
    :param key: the dotted key path inside it; empty when the whole file is at fault.
    :param message: what was expected and what was found.
    """

    exit_status = 78  # EX_CONFIG

    def __init__(self, path: str, key: str, message: str):
        self.path = str(path)
        self.key = key
        self.message = message
        where = f"{self.path}: {key}" if key else self.path
        super().__init__(f"{where}: {message}")


class ProfileError(ConfigError):
    """A device profile (``firmware_profiles/...``) is malformed.

    Example scenarios: a column outside the record, an unknown field format, a regular
    expression that does not compile, a typo in a key name.
    """


class RecordError(GatewayError, ValueError):
    """A record does not fit its profile; ``reason`` says why in a few words.

    Raised only inside the parser and turned into an ``unparsed`` event at its single
    public boundary (:meth:`gateway.smdr.parser.RecordParser.parse`).
    """

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)
