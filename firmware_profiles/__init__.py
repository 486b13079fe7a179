"""The bundled device profiles: data files only (``pbx/``, ``headsets/``), shipped inside the
package as plain files, so a path will do, without importlib.resources and the 2 MB it
costs the daemon."""

from pathlib import Path

#: Where they are, installed or in a checkout.
BUNDLED = Path(__file__).parent
