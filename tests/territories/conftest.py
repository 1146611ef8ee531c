import io
from pathlib import Path

import pytest
from django.core.management import call_command

DATA_DIR = Path(__file__).resolve().parent / "data"


def run(command: str, *args, **options) -> str:
    """Run a management command and return what it printed."""
    out = io.StringIO()
    call_command(command, *args, stdout=out, **options)
    return out.getvalue()


@pytest.fixture
def territories(db):
    """The database loaded from the committed seed files."""
    run("load_territories")
