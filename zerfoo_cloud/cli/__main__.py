"""
``python -m zerfoo_cloud.cli``: the ``zerfoo-cloud`` command.
"""

from __future__ import annotations

import sys

from zerfoo_cloud.cli._main import main

sys.exit(main())
