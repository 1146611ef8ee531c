"""Cells that a spreadsheet will not run as formulas (CSV and XLSX exports)."""

# Spreadsheet programs read a cell that starts with one of these as a formula (OWASP "CSV
# injection"): a signer's name "=HYPERLINK(...)" would run in an organizer's spreadsheet. Tab and
# carriage return are on the list because some programs strip them and then read what follows.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value) -> str:
    """The value as text, with a leading apostrophe when a spreadsheet would read it as a formula."""
    if value is None:
        return ""
    text = str(value)
    if text.startswith(FORMULA_PREFIXES):
        return "'" + text
    return text
