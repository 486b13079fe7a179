"""The ``pbxgw`` commands, one module each (as python-can's tools are): each module's
``add_commands(sub)`` adds its sub-command(s) to the parser, with a ``run`` function that
takes the parsed arguments and returns the exit status. :mod:`gateway.cli` only wires
them, in the order ``pbxgw --help`` lists them. Helpers they share: :mod:`.common`.

Modules that pull in asyncio, paho, pyudev or cffi are imported inside the commands that
need them, so that ``pbxgw parse`` starts quickly.
"""

#: The command modules, in the order of ``pbxgw --help``.
MODULES = ("parse", "capture", "profiles", "detect", "simulate", "hid", "status", "dead", "export", "devices", "run",
           "check_config", "subscribe", "collect", "fleet", "report", "reparse", "broker_acl")
