"""Where robotlearn's data folders (configs/, sim_assets/) are, in a checkout and in an installed wheel.

A source checkout (and an editable install) reads the top-level folders next to the package, so edits
take effect at once. A built wheel carries copies as package data (robotlearn/_data/<name>, installed by
drivers/CMakeLists.txt) and finds them with importlib.resources, so `pip install robotlearn-*.whl` works
from any directory and on Ray workers of other machines. ``ROBOTLEARN_CONFIGS`` / ``ROBOTLEARN_ASSETS``
point at a folder of the user's own instead.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

_ENV_VARS = {"configs": "ROBOTLEARN_CONFIGS", "sim_assets": "ROBOTLEARN_ASSETS"}


def data_root(name: str) -> Path:
    """The folder `name` ("configs" or "sim_assets")."""
    override = os.environ.get(_ENV_VARS[name])
    if override:
        return Path(override).expanduser().resolve()
    import robotlearn

    # the package's own source folder (an editable install also maps site-packages into the package path,
    # so importlib.resources alone could answer with the installed copy instead of the checkout)
    checkout = Path(robotlearn.__file__).resolve().parent.parent / name
    if (checkout / ".robotlearn-data").exists():
        return checkout
    return Path(str(resources.files("robotlearn") / "_data" / name))
