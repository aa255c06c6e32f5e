"""
The console's Jinja2 templates (in ``templates/``), autoescaped: every
value a page shows is HTML-escaped unless a template says otherwise, and
none does.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape

from zerfoo_cloud.http.console._formatting import (
    money,
    relative_time,
    thousands,
    utc_text,
)

__all__ = ["TEMPLATE_DIR", "Templates"]

#: Where the templates live.
TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"


def _timestamp(value: float | datetime) -> float:
    return value.timestamp() if isinstance(value, datetime) else float(value)


class Templates:
    """
    Renders the console's templates (all read when it is made), with the
    formatting helpers as
    filters: ``thousands``, ``money(currency)``, ``utc`` and ``ago`` (a
    ``<time>`` element saying how long ago, with the exact UTC time in its
    ``title``; it needs ``now`` in the context).
    """

    def __init__(self, directory: Path = TEMPLATE_DIR) -> None:
        self.environment = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(directory)),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            # Read once, here: rendering never touches the disk (it may run
            # on the event loop).
            auto_reload=False,
            cache_size=-1,
        )
        filters = self.environment.filters
        filters["thousands"] = thousands
        filters["money"] = money
        filters["utc"] = lambda value: utc_text(_timestamp(value))
        self.environment.globals["ago"] = self._ago
        for name in self.environment.list_templates():
            self.environment.get_template(name)

    @staticmethod
    @jinja2.pass_context
    def _ago(context: jinja2.runtime.Context, value: float | datetime | None) -> Markup:
        if value is None:
            return Markup("")
        ts = _timestamp(value)
        exact = utc_text(ts)
        text = relative_time(ts, float(context["now"]))
        iso = datetime.fromtimestamp(ts, timezone.utc).isoformat()
        return Markup('<time datetime="{}" title="{}">{}</time>').format(
            escape(iso), escape(exact), escape(text)
        )

    def render(self, name: str, context: dict[str, Any]) -> str:
        """
        The text of template *name* rendered with *context*.
        """
        return self.environment.get_template(name).render(context)
