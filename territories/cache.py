"""Departments and caisses held in each process's memory: the signing form reads them per request.

About a hundred departments and caisses, read on every signature, changed a few times a year
(an organizer corrects a caisse's name or address; `load_territories` at a deploy). Loading them
cost a query and a hundred model instances per request; here they are loaded once per process and
reused while they are known to be current:

1. Each read costs one light query, the fingerprint: row count and highest id of the regions,
   departments and caisses. Any row added or deleted, by a bulk load too, and a database
   rebuilt or rolled back (tests), changes it, and the data is loaded again.
2. A change in place (a caisse renamed in the admin) keeps the fingerprint: the process that
   saves it drops its copy at once (post_save / post_delete below); the other processes reload
   every RELOAD_SECONDS at the latest. What such a change can make stale is only a label in the
   caisse list; which caisse a pledge points to is decided by ids, which the fingerprint covers.

The instances are shared by every thread of the process: treat them as read-only.
"""

import threading
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from territories.models import Caisse, Department, Region

# Default for settings.TERRITORIES_CACHE_RELOAD_SECONDS.
RELOAD_SECONDS = 300


@dataclass(frozen=True)
class ReferenceData:
    fingerprint: tuple
    loaded_at: float
    # In official order (position), each with its region loaded.
    departments: tuple[Department, ...]
    department_by_code: dict[str, Department] = field(repr=False)
    # Department id -> its caisses by name, each with its department loaded.
    caisses_by_department: dict[int, tuple[Caisse, ...]] = field(repr=False)
    caisse_by_code: dict[str, Caisse] = field(repr=False)

    def caisses_of(self, department: Department) -> tuple[Caisse, ...]:
        return self.caisses_by_department.get(department.pk, ())


_lock = threading.Lock()
_current: ReferenceData | None = None


def _fingerprint() -> tuple:
    """(count, max id) of regions, departments and caisses, in one round trip."""
    # Table names come from the models, never from input.
    parts = ", ".join(
        f"(SELECT COUNT(*) FROM {table}), (SELECT MAX(id) FROM {table})"  # noqa: S608
        for table in (Region._meta.db_table, Department._meta.db_table, Caisse._meta.db_table)
    )
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {parts}")
        return tuple(cursor.fetchone())


def _load(fingerprint: tuple) -> ReferenceData:
    departments = tuple(Department.objects.select_related("region").order_by("position"))
    by_id = {department.pk: department for department in departments}
    grouped: dict[int, list[Caisse]] = {}
    by_code: dict[str, Caisse] = {}
    for caisse in Caisse.objects.order_by("name"):
        department = by_id.get(caisse.department_id)
        if department is None:
            # Both were added between the two queries: the next fingerprint differs, and reloads.
            continue
        # The department instance of this snapshot, not one more copy per caisse.
        caisse.department = department
        grouped.setdefault(caisse.department_id, []).append(caisse)
        by_code[caisse.code] = caisse
    return ReferenceData(
        fingerprint=fingerprint,
        loaded_at=time.monotonic(),
        departments=departments,
        department_by_code={department.code: department for department in departments},
        caisses_by_department={key: tuple(value) for key, value in grouped.items()},
        caisse_by_code=by_code,
    )


def reference_data() -> ReferenceData:
    """The current departments and caisses: one light query, plus the load when they changed."""
    global _current
    fingerprint = _fingerprint()
    data = _current
    reload_seconds = getattr(settings, "TERRITORIES_CACHE_RELOAD_SECONDS", RELOAD_SECONDS)
    if data is None or data.fingerprint != fingerprint or time.monotonic() - data.loaded_at > reload_seconds:
        # Two threads that miss together both load; the lock only keeps the swap whole.
        data = _load(fingerprint)
        with _lock:
            _current = data
    return data


def reference_data_clear() -> None:
    """Forget this process's copy: the next read loads the data again."""
    global _current
    with _lock:
        _current = None


@receiver(post_save, sender=Region, dispatch_uid="territories.cache.region_saved")
@receiver(post_delete, sender=Region, dispatch_uid="territories.cache.region_deleted")
@receiver(post_save, sender=Department, dispatch_uid="territories.cache.department_saved")
@receiver(post_delete, sender=Department, dispatch_uid="territories.cache.department_deleted")
@receiver(post_save, sender=Caisse, dispatch_uid="territories.cache.caisse_saved")
@receiver(post_delete, sender=Caisse, dispatch_uid="territories.cache.caisse_deleted")
def _reference_changed(sender, **kwargs) -> None:
    reference_data_clear()
