"""
A process that opens an alert outbox folder and sends what waits in it,
with the secret of ``ZERFOO_CLOUD_WEBHOOK_SECRET``; prints the counts.

    python -m tests.alerts._alerts_child FOLDER
"""

from __future__ import annotations

import os
import sys

import orjson

from zerfoo_cloud.alerts import WebhookSender, parse_secrets
from zerfoo_cloud.stores.alerts import LMDBAlertOutbox


def main(folder: str) -> None:
    """Send every due delivery of *folder* once; print the counts as JSON."""
    secrets = parse_secrets(os.environ["ZERFOO_CLOUD_WEBHOOK_SECRET"])
    with LMDBAlertOutbox.open(folder) as outbox:
        went = WebhookSender(outbox, secrets).send_due()
        sys.stdout.write(
            orjson.dumps({"went": went, **outbox.counts()._asdict()}).decode()
        )


if __name__ == "__main__":
    main(sys.argv[1])
