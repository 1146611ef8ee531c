"""A Celery worker whose batches are small, so that a release of a dozen letters spans several
commits and a worker can be killed between two of them.

    python -m tests.reliability.worker_main -A deconv worker ...

RELIABILITY_LETTER_BATCH (letters per layout and commit) and RELIABILITY_SEND_CHUNK (emails per
send task) shrink pledges.letters_pipeline.BATCH_SIZE and deconv.outbox.SEND_CHUNK in this
process only; the code paths are the production ones.
"""

import os
import sys

import django


def small_batches_apply() -> None:
    from deconv import outbox
    from pledges import letters_pipeline

    if os.environ.get("RELIABILITY_LETTER_BATCH"):
        size = int(os.environ["RELIABILITY_LETTER_BATCH"])
        letters_pipeline.BATCH_SIZE = size
        # The default was bound when the function was defined.
        letters_pipeline.release_letters_generate.__kwdefaults__["batch_size"] = size
    if os.environ.get("RELIABILITY_SEND_CHUNK"):
        outbox.SEND_CHUNK = int(os.environ["RELIABILITY_SEND_CHUNK"])


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deconv.settings")
    django.setup()
    small_batches_apply()
    from celery.bin.celery import main

    sys.argv[0] = "celery"
    sys.exit(main())
