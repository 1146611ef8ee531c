import pytest
from hypothesis import settings as hypothesis_settings

from tests.security.world import ROLES, World, world_build

# No example database in the working tree (.hypothesis/), and no per-example deadline: the CI
# machine is shared, and a slow example is not a wrong one. Examples are drawn afresh each run.
hypothesis_settings.register_profile("deconv", database=None, deadline=None)
hypothesis_settings.load_profile("deconv")


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def private_cache(settings, request):
    """Rate-limit counters of this test only (the shared Redis cache is flushed by other tests)."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": request.node.nodeid,
        }
    }


@pytest.fixture
def world(db, private_cache) -> World:
    return world_build()


@pytest.fixture
def clients(world):
    """A test client per role, signed in (but the anonymous one)."""
    from django.test import Client

    made = {}
    for role in ROLES:
        client = Client(raise_request_exception=False)
        if role != "anonymous":
            client.force_login(world.users[role])
        made[role] = client
    return made


@pytest.fixture
def figures(record_property):
    """figures("name", {...}): print, attach to the report, append to test-artifacts/reliability.txt."""
    from tests.reliability.servers import figures_report

    def report(name: str, values: dict) -> None:
        figures_report(name, values, record_property)

    return report
