"""A last line of defence: log records leave the process without email addresses or RPPS numbers.

Our own code never logs personal data (ids, types and counts only). Libraries and exception
texts may: a database error quoting a row ("Key (email)=(dr.x@example.org) already exists"), a
mail server refusing an address. PersonalDataFilter, on the handlers in settings.LOGGING,
rewrites each record's message and exception text before any handler formats it:

- email addresses become "<email>";
- runs of exactly 11 digits (an RPPS number, possibly written with spaces, dots or dashes
  between digit groups) become "<rpps>". Longer runs (timestamps in ms, ids) are left alone.

Names cannot be recognised in free text: they must simply never be logged.
"""

import logging
import re

EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
# 11 digits, optionally grouped by one separator, not touching other digits.
RPPS = re.compile(r"(?<![0-9])[0-9](?:[ .\-\u00a0]?[0-9]){10}(?![0-9])")


def personal_data_mask(text: str) -> str:
    return RPPS.sub("<rpps>", EMAIL.sub("<email>", text))


class PersonalDataFilter(logging.Filter):
    """Masks email addresses and RPPS numbers in a record's message and exception text."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            # A malformed record (arguments that do not fit the format): leave it to the handler.
            return True
        masked = personal_data_mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = personal_data_mask(record.exc_text)
        if record.stack_info:
            record.stack_info = personal_data_mask(record.stack_info)
        return True
