"""A synthetic population of physicians and pledges, for demos and benchmarks.

Every row is fictitious and built to be recognisable as such:
- RPPS numbers come from a block of our own, "109" + a 7-digit serial + the Luhn digit; the
  serial continues from the highest one already in the database, so running again adds new
  physicians and never collides with earlier runs.
- Accounts are dr.<name>.<serial>@example.invalid: the .invalid top-level domain is reserved
  (RFC 2606) and resolves nowhere, so no mail to them can ever leave; passwords are unusable.

Each physician gets an account, a verified primary allauth EmailAddress (cheap with COPY, and
what fan-out queries filter on), an RppsClaim, an active Pledge on the campaign's current
letter version and its +1 PledgeEvent, written in the same transaction per batch (the
invariant pledge_event_record keeps). Events are dated at the signing time, usually before the
counting bookmark, so counts_update alone would not see them: `counts_refresh` runs
counts_update then counts_reconcile, which folds them in.

Speed: on PostgreSQL rows go in with COPY (psycopg's cursor.copy) after reserving primary keys
from the sequences; elsewhere (SQLite) with executemany under SQLite's single-writer lock.
"""

import logging
import math
import operator
import random
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice

from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import UNUSABLE_PASSWORD_PREFIX
from django.db import connection, models, transaction
from django.db.models import Count, Max
from django.utils import timezone

from pledges.enums import (
    LIVE_STATUSES,
    ConventionSector,
    PledgeEventKind,
    PledgeSource,
    PledgeStatus,
    PracticeMode,
    Specialty,
)
from pledges.models import Campaign, Pledge, PledgeEvent, RppsClaim
from territories.models import Caisse, Department, ReferencePopulation

logger = logging.getLogger(__name__)

DEMO_RPPS_PREFIX = "109"
DEMO_SERIAL_DIGITS = 7
DEMO_EMAIL_DOMAIN = "example.invalid"
# One constant is enough: "!" makes a password unusable, what follows is never checked.
DEMO_PASSWORD = f"{UNUSABLE_PASSWORD_PREFIX}demo-pledges"
DEFAULT_BATCH = 5000
# PostgreSQL advisory lock key of demo runs: b"deconvdm" read as a signed 64-bit integer.
DEMO_LOCK_KEY = 0x6465636F6E76646D
DEFAULT_DAYS = 120

# Departments pushed close to a threshold: the share of their reference population they reach.
HOT_DEPARTMENTS = 5
HOT_SHARE_RANGE = (0.27, 0.31)
# The hot departments take at most this share of the pledges of a run.
HOT_BUDGET_SHARE = 0.4
# Reference populations (GPs) a hot department may have: large enough to look real, small
# enough that a modest run can bring it near its threshold.
HOT_POPULATION_RANGE = (80, 900)

# Common French names (INSEE frequency lists, trimmed); accents kept: letters print them.
FIRST_NAMES = (
    "Marie", "Nathalie", "Isabelle", "Sylvie", "Catherine", "Sophie", "Christine", "Valérie",
    "Sandrine", "Véronique", "Céline", "Stéphanie", "Aurélie", "Julie", "Camille", "Émilie",
    "Claire", "Anne", "Laure", "Élodie", "Caroline", "Pauline", "Mathilde", "Charlotte",
    "Hélène", "Agnès", "Cécile", "Laurence", "Florence", "Delphine", "Virginie", "Audrey",
    "Marion", "Lucie", "Sarah", "Léa", "Clémence", "Manon", "Alice", "Juliette", "Chloé",
    "Amélie", "Marine", "Anaïs", "Margaux", "Élise", "Justine", "Noémie", "Jeanne", "Louise",
    "Jean", "Philippe", "Michel", "Alain", "Patrick", "Nicolas", "Christophe", "Pierre",
    "Christian", "Éric", "Frédéric", "Laurent", "Stéphane", "David", "Olivier", "Julien",
    "Sébastien", "Thomas", "Vincent", "François", "Jérôme", "Guillaume", "Antoine", "Mathieu",
    "Maxime", "Alexandre", "Romain", "Benjamin", "Hugo", "Lucas", "Paul", "Arnaud", "Bruno",
    "Thierry", "Didier", "Pascal", "Gilles", "Xavier", "Emmanuel", "Fabrice", "Jean-Marc",
    "Jean-Pierre", "Jean-François", "Bertrand", "Cédric", "Damien", "Florian", "Clément",
    "Quentin", "Adrien", "Louis", "Étienne", "Yann", "Loïc", "Benoît", "Marc", "Denis", "Hervé",
)  # fmt: skip
LAST_NAMES = (
    "Martin", "Bernard", "Thomas", "Petit", "Robert", "Richard", "Durand", "Dubois", "Moreau",
    "Laurent", "Simon", "Michel", "Lefebvre", "Leroy", "Roux", "David", "Bertrand", "Morel",
    "Fournier", "Girard", "Bonnet", "Dupont", "Lambert", "Fontaine", "Rousseau", "Vincent",
    "Muller", "Lefèvre", "Faure", "André", "Mercier", "Blanc", "Guérin", "Boyer", "Garnier",
    "Chevalier", "François", "Legrand", "Gauthier", "Garcia", "Perrin", "Robin", "Clément",
    "Morin", "Nicolas", "Henry", "Roussel", "Mathieu", "Gautier", "Masson", "Marchand", "Duval",
    "Denis", "Dumont", "Marie", "Lemaire", "Noël", "Meyer", "Dufour", "Meunier", "Brun",
    "Blanchard", "Giraud", "Joly", "Rivière", "Lucas", "Brunet", "Gaillard", "Barbier", "Arnaud",
    "Martinez", "Gérard", "Roche", "Renard", "Schmitt", "Roy", "Leroux", "Colin", "Vidal",
    "Caron", "Picard", "Roger", "Fabre", "Aubert", "Lemoine", "Renaud", "Dumas", "Lacroix",
    "Olivier", "Philippe", "Bourgeois", "Pierre", "Benoît", "Rey", "Leclerc", "Payet", "Rolland",
    "Leclercq", "Guillaume", "Lecomte", "Lopez", "Jean", "Dupuy", "Guillot", "Hubert", "Berger",
    "Carpentier", "Sanchez", "Dupuis", "Moulin", "Louis", "Deschamps", "Huet", "Vasseur", "Perez",
    "Boucher", "Fleury", "Royer", "Klein", "Jacquet", "Adam", "Paris", "Poirier", "Marty",
    "Aubry", "Guyot", "Carré", "Charles", "Renault", "Charpentier", "Ménard", "Maillard", "Baron",
    "Bertin", "Bailly", "Hervé", "Schneider", "Fernandez", "Le Gall", "Collet", "Léger",
    "Bouvier", "Julien", "Prévost", "Millet", "Perrot", "Daniel", "Le Roux", "Cousin", "Germain",
    "Breton", "Besson", "Langlois", "Rémy", "Le Goff", "Pelletier", "Lévêque", "Perrier",
    "Leblanc", "Barré", "Lebrun", "Marchal", "Weber", "Mallet", "Hamon", "Boulanger", "Jacob",
    "Monnier", "Michaud", "Rodriguez", "Guichard", "Gillet", "Étienne", "Grondin", "Poulain",
    "Tessier", "Chevallier", "Collin", "Chauvin", "Da Silva", "Bouchet", "Gay", "Lemaître",
    "Bénard", "Maréchal", "Humbert", "Reynaud", "Antoine", "Hoarau", "Perret", "Barthélemy",
    "Cordier", "Pichon", "Lejeune", "Gilbert", "Lamy", "Delaunay", "Pasquier", "Carlier",
)  # fmt: skip
STREETS = (
    "rue de la République", "avenue du Général-de-Gaulle", "rue Victor-Hugo", "place de la Mairie",
    "rue Pasteur", "boulevard Jean-Jaurès", "rue des Écoles", "avenue de la Gare", "rue Nationale",
    "rue du Maréchal-Foch", "place de l'Église", "rue Gambetta", "chemin des Vignes",
    "rue Jules-Ferry", "allée des Tilleuls", "rue de la Paix", "avenue Aristide-Briand",
)  # fmt: skip
OVERSEAS_POSTAL_CODES = {
    "971": ("97100", "97110", "97122", "97160", "97170", "97180", "97190"),
    "972": ("97200", "97220", "97230", "97232", "97240", "97250"),
    "973": ("97300", "97310", "97320", "97351", "97354"),
    "974": ("97400", "97410", "97420", "97430", "97460", "97490"),
    "976": ("97600", "97610", "97615", "97620", "97640", "97660"),
}
# Mostly general practice, as among the union's signers; the rest spread over office specialties.
SPECIALTY_WEIGHTS = {
    Specialty.GENERAL_PRACTICE: 80,
    Specialty.PEDIATRICS: 3,
    Specialty.PSYCHIATRY: 3,
    Specialty.GYNECOLOGY: 2,
    Specialty.DERMATOLOGY: 2,
    Specialty.CARDIOLOGY: 2,
    Specialty.OPHTHALMOLOGY: 2,
    Specialty.RHEUMATOLOGY: 1,
    Specialty.RADIOLOGY: 1,
    Specialty.ENT: 1,
    Specialty.GASTROENTEROLOGY: 1,
    Specialty.ENDOCRINOLOGY: 1,
    Specialty.PHYSICAL_MEDICINE: 1,
}
PRACTICE_MODE_WEIGHTS = {PracticeMode.LIBERAL: 90, PracticeMode.MIXED: 10}
SECTOR_WEIGHTS = {
    ConventionSector.SECTOR_1: 70,
    ConventionSector.SECTOR_1_DP: 2,
    ConventionSector.SECTOR_2: 12,
    ConventionSector.SECTOR_2_OPTAM: 16,
}
# Signing by hour of day (local time): before and after consultations, at lunch, late evening.
HOUR_WEIGHTS = (1, 1, 0, 0, 0, 1, 3, 6, 7, 5, 4, 4, 8, 9, 6, 4, 4, 5, 7, 9, 10, 9, 6, 3)
# Monday first: fewer on Sundays, most early in the week when news of negotiations breaks.
WEEKDAY_WEIGHTS = (1.0, 0.95, 0.9, 0.85, 0.8, 0.55, 0.45)


@dataclass(frozen=True, slots=True)
class Physician:
    serial: int
    rpps: str
    first_name: str
    last_name: str
    email: str
    department_id: int
    caisse_id: int | None
    specialty: str
    practice_mode: str
    sector: str
    practice_address: str
    postal_code: str
    city: str
    patient_list_size: int | None
    signed_at: datetime


@dataclass
class DemoPledgesResult:
    created: int
    first_serial: int
    last_serial: int
    method: str
    seed: int
    insert_seconds: float
    counts_seconds: float | None
    # Department code -> pledges a hot department was given, to reach near HOT_SHARE_RANGE.
    hot_departments: dict[str, int] = field(default_factory=dict)
    counts_note: str = ""


# --- Identifiers and names --------------------------------------------------------------------


def demo_rpps(serial: int) -> str:
    """The demo RPPS of a serial: "109" + 7 digits + the Luhn check digit."""
    if not 0 <= serial < 10**DEMO_SERIAL_DIGITS:
        raise ValueError(f"demo serial {serial} out of range")
    body = f"{DEMO_RPPS_PREFIX}{serial:0{DEMO_SERIAL_DIGITS}d}"
    return body + _luhn_digit(body)


def _luhn_digit(body: str) -> str:
    """rpps.luhn_check_digit in one pass (that one tries ten candidates: 16 % of a run, py-spy).

    From the right, every other digit of `body` is doubled, starting with its last one: the
    check digit appended after it takes position 0. Equal to luhn_check_digit (tested).
    """
    total = 0
    for position, char in enumerate(reversed(body)):
        value = int(char) << (1 - position % 2)
        total += value - 9 if value > 9 else value
    return str(-total % 10)


def demo_next_serial() -> int:
    """One past the highest demo serial used by any claim or pledge (0 on an empty database)."""
    highest = [
        RppsClaim.objects.filter(rpps__startswith=DEMO_RPPS_PREFIX).aggregate(m=Max("rpps"))["m"],
        Pledge.objects.filter(rpps__startswith=DEMO_RPPS_PREFIX).aggregate(m=Max("rpps"))["m"],
    ]
    serials = [int(rpps[len(DEMO_RPPS_PREFIX) : -1]) for rpps in highest if rpps]
    return max(serials) + 1 if serials else 0


def _email_slug(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return "-".join(ascii_name.lower().replace("'", " ").split())


def demo_email(*, last_name: str, serial: int) -> str:
    return f"dr.{_email_slug(last_name)}.{serial}@{DEMO_EMAIL_DOMAIN}"


def _postal_code(rng: random.Random, department_code: str) -> str:
    if department_code in OVERSEAS_POSTAL_CODES:
        return rng.choice(OVERSEAS_POSTAL_CODES[department_code])
    if department_code == "2A":
        return f"20{rng.randrange(0, 200, 10):03d}"
    if department_code == "2B":
        return f"20{rng.choice('26')}{rng.randrange(0, 100, 10):02d}"
    return f"{department_code}{rng.randrange(10, 1000, 10):03d}"


# --- Where and when -------------------------------------------------------------------------------


def department_quotas(
    *,
    rng: random.Random,
    count: int,
    populations: dict[int, int],
    existing: dict[int, int],
) -> tuple[dict[int, int], dict[int, int]]:
    """How many new pledges each department gets: (all quotas, the hot departments' share).

    1. Pick up to HOT_DEPARTMENTS departments of a suitable size, in random order, and give each
       what brings it to a share in HOT_SHARE_RANGE of its population (minus what it already
       has), as long as the hot total stays within HOT_BUDGET_SHARE of the run.
    2. Spread the rest over the other departments in proportion to their population (a
       multinomial draw: small departments may get none in a small run).
    """
    hot: dict[int, int] = {}
    budget = int(count * HOT_BUDGET_SHARE)
    candidates = [
        pk
        for pk, size in sorted(populations.items())
        if HOT_POPULATION_RANGE[0] <= size <= HOT_POPULATION_RANGE[1]
    ]
    rng.shuffle(candidates)
    for pk in candidates:
        if len(hot) >= HOT_DEPARTMENTS:
            break
        target = math.ceil(rng.uniform(*HOT_SHARE_RANGE) * populations[pk]) - existing.get(pk, 0)
        if 0 < target <= budget:
            hot[pk] = target
            budget -= target

    rest = count - sum(hot.values())
    others = [pk for pk in sorted(populations) if pk not in hot and populations[pk] > 0]
    quotas = Counter(hot)
    if rest > 0 and others:
        quotas.update(rng.choices(others, weights=[populations[pk] for pk in others], k=rest))
    elif rest > 0:
        quotas.update(rng.choices(sorted(hot), k=rest))
    return dict(quotas), hot


def signing_times(*, rng: random.Random, count: int, end: datetime, days: int) -> list[datetime]:
    """`count` signing times over the `days` before `end`, sorted, shaped like a real campaign.

    A launch surge that fades over a couple of weeks, a steady trickle, and three surges (news
    of failed negotiations) that each fade within days; within a day, the hours physicians have
    between patients; fewer signatures at weekends.
    """
    span = float(days)
    surges = sorted(rng.uniform(0.15 * span, 0.95 * span) for _ in range(3))
    # (weight, start day, exponential scale in days; None = uniform over the span)
    components = [
        (0.25, 0.0, 6.0),
        (0.35, 0.0, None),
        (0.2, surges[0], 1.5),
        (0.12, surges[1], 1.0),
        (0.08, surges[2], 2.0),
    ]
    weights = [c[0] for c in components]
    start = end - timedelta(days=days)
    # Midnight of the first day, local time: hours of the day are wall-clock hours.
    local_start = timezone.localtime(start).replace(hour=0, minute=0, second=0, microsecond=0)
    hours = rng.choices(range(24), weights=HOUR_WEIGHTS, k=count)
    times = []
    for index in range(count):
        while True:
            _, first_day, scale = rng.choices(components, weights=weights)[0]
            offset = rng.uniform(0.0, span) if scale is None else first_day + rng.expovariate(1.0 / scale)
            if offset >= span:
                continue
            day = int(offset)
            weekday = (local_start.weekday() + day) % 7
            if rng.random() <= WEEKDAY_WEIGHTS[weekday]:
                break
        moment = local_start + timedelta(days=day, hours=hours[index], seconds=rng.uniform(0, 3600))
        # The first and last days are partial: fold what falls outside back inside the window.
        if moment < start or moment > end:
            moment = start + timedelta(seconds=rng.uniform(0, (end - start).total_seconds()))
        times.append(moment)
    times.sort()
    return times


def _weighted(rng: random.Random, weights: dict, allowed: Sequence[str] | None, k: int) -> list[str]:
    choices = [value for value in weights if not allowed or value in allowed]
    if not choices:
        choices = list(allowed or weights)
    return rng.choices(choices, weights=[weights.get(value, 1) for value in choices], k=k)


def physicians_generate(
    *,
    rng: random.Random,
    campaign: Campaign,
    count: int,
    first_serial: int,
    days: int,
    now: datetime,
) -> tuple[Iterator[Physician], dict[str, int]]:
    """The run's physicians in signing order (generated lazily), and the hot departments.

    Only compact per-physician lists (department, time, specialty...) are built up front, so a
    million physicians fit in a few hundred MB at most; the Physician rows are made batch by batch.
    """
    departments = {d.pk: d for d in Department.objects.all()}
    if not departments:
        raise ValueError("no departments: run `manage.py load_territories` first")
    populations = _reference_populations(kind=campaign.reference_population_kind)
    if not populations:
        populations = dict.fromkeys(departments, 1)
    existing = dict(
        Pledge.objects.filter(campaign=campaign, status__in=LIVE_STATUSES)
        .values_list("department_id")
        .annotate(n=Count("pk"))
        .order_by()
    )
    quotas, hot = department_quotas(rng=rng, count=count, populations=populations, existing=existing)
    caisses: dict[int, list[int]] = {}
    for department_id, caisse_id in Caisse.objects.values_list("department_id", "pk").order_by("pk"):
        caisses.setdefault(department_id, []).append(caisse_id)

    department_ids = [pk for pk, quota in sorted(quotas.items()) for _ in range(quota)]
    rng.shuffle(department_ids)
    times = signing_times(rng=rng, count=count, end=now - timedelta(minutes=1), days=days)
    specialties = _weighted(rng, SPECIALTY_WEIGHTS, campaign.eligible_specialties, count)
    modes = _weighted(rng, PRACTICE_MODE_WEIGHTS, campaign.eligible_practice_modes, count)
    sectors = _weighted(rng, SECTOR_WEIGHTS, None, count)

    def physicians() -> Iterator[Physician]:
        for index in range(count):
            serial = first_serial + index
            department = departments[department_ids[index]]
            last_name = rng.choice(LAST_NAMES)
            options = caisses.get(department.pk)
            is_gp = specialties[index] == Specialty.GENERAL_PRACTICE
            yield Physician(
                serial=serial,
                rpps=demo_rpps(serial),
                first_name=rng.choice(FIRST_NAMES),
                last_name=last_name,
                email=demo_email(last_name=last_name, serial=serial),
                department_id=department.pk,
                caisse_id=rng.choice(options) if options else None,
                specialty=str(specialties[index]),
                practice_mode=str(modes[index]),
                sector=str(sectors[index]),
                practice_address=f"{rng.randint(1, 120)} {rng.choice(STREETS)}",
                postal_code=_postal_code(rng, department.code),
                # No list of communes here: the department's name stands in for the city.
                city=department.name,
                patient_list_size=max(150, int(rng.gauss(950, 350))) if is_gp else None,
                signed_at=times[index],
            )

    return physicians(), {departments[pk].code: n for pk, n in hot.items()}


def _reference_populations(*, kind: str) -> dict[int, int]:
    """Department id -> latest reference count of `kind`."""
    latest: dict[int, tuple[int, int]] = {}
    for department_id, year, count in ReferencePopulation.objects.filter(kind=kind).values_list(
        "department_id", "year", "count"
    ):
        if department_id not in latest or year > latest[department_id][0]:
            latest[department_id] = (year, count)
    return {pk: count for pk, (_, count) in latest.items()}


# --- Writing --------------------------------------------------------------------------------------


class _RowWriter:
    """Insert plain rows into a model's table, filling unspecified columns with field defaults.

    Raw inserts skip Django's auto_now/auto_now_add (which would stamp every pledge "now") and
    the per-object overhead; the price is that defaults are applied here, from the model.
    """

    def __init__(self, *, use_copy: bool):
        self.use_copy = use_copy

    def reserve_ids(self, model: type[models.Model], n: int) -> list[int]:
        table, pk = model._meta.db_table, model._meta.pk.column
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                # Sequence values are never handed out twice, even to concurrent inserts.
                cursor.execute(
                    "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                    [table, pk, n],
                )
                return [row[0] for row in cursor.fetchall()]
            # SQLite: the transaction holds the write lock (BEGIN IMMEDIATE), so MAX() stays ours.
            quote = connection.ops.quote_name
            cursor.execute(f"SELECT MAX({quote(pk)}) FROM {quote(table)}")  # noqa: S608 (model metadata)
            start = (cursor.fetchone()[0] or 0) + 1
            return list(range(start, start + n))

    def write(self, model: type[models.Model], rows: list[dict]) -> None:
        """Write rows that all have the same keys; other columns get their field default."""
        if not rows:
            return
        given = list(rows[0])
        fields = [
            f
            for f in model._meta.concrete_fields
            if f.attname not in given and not f.primary_key and f.db_default is models.NOT_PROVIDED
        ]
        # A unique field's default (a receipt's uuid4) must be drawn for every row, not once.
        per_row = [f for f in fields if f.unique]
        constant = tuple(f.get_default() for f in fields if not f.unique)
        by_name = {f.attname: f for f in model._meta.concrete_fields}
        columns = [by_name[name] for name in given] + [f for f in fields if not f.unique] + per_row
        # itemgetter builds each row's tuple in C: a Python call per value took ~10 % of a
        # run (py-spy, 30k pledges).
        pick = operator.itemgetter(*given) if len(given) > 1 else (lambda row: (row[given[0]],))
        if per_row:
            values = (pick(row) + constant + tuple(f.get_default() for f in per_row) for row in rows)
        else:
            values = (pick(row) + constant for row in rows)
        quote = connection.ops.quote_name
        table = quote(model._meta.db_table)
        column_list = ", ".join(quote(f.column) for f in columns)
        with connection.cursor() as cursor:
            if self.use_copy:
                with cursor.cursor.copy(f"COPY {table} ({column_list}) FROM STDIN") as copy:
                    for value in values:
                        copy.write_row(value)
                return
            # Each field prepares its own value for this database (datetimes, UUIDs on SQLite...).
            adapted = [
                [field.get_db_prep_save(value, connection) for field, value in zip(columns, row, strict=True)]
                for row in values
            ]
            placeholders = ", ".join(["%s"] * len(columns))
            cursor.executemany(f"INSERT INTO {table} ({column_list}) VALUES ({placeholders})", adapted)  # noqa: S608 (model metadata)


def _batches(items: Iterator, size: int) -> Iterator[list]:
    while batch := list(islice(items, size)):
        yield batch


def _write_batch(
    *, writer: _RowWriter, campaign: Campaign, letter_version_id: int, batch: Sequence[Physician]
) -> None:
    """One transaction: accounts, addresses, claims, pledges and their +1 events together."""
    User = get_user_model()
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # Don't wait for the WAL flush at each batch's commit: a crash can lose the last
            # batches, never half of one. Demo rows are worth that; it saves ~20 % of the run.
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        user_ids = writer.reserve_ids(User, len(batch))
        pledge_ids = writer.reserve_ids(Pledge, len(batch))
        writer.write(
            User,
            [
                {
                    "id": user_id,
                    "password": DEMO_PASSWORD,
                    "email": p.email,
                    "is_active": True,
                    "date_joined": p.signed_at - timedelta(minutes=3),
                }
                for user_id, p in zip(user_ids, batch, strict=True)
            ],
        )
        writer.write(
            EmailAddress,
            [
                {"user_id": user_id, "email": p.email, "verified": True, "primary": True}
                for user_id, p in zip(user_ids, batch, strict=True)
            ],
        )
        writer.write(
            RppsClaim,
            [
                {"rpps": p.rpps, "user_id": user_id, "created_at": p.signed_at}
                for user_id, p in zip(user_ids, batch, strict=True)
            ],
        )
        writer.write(
            Pledge,
            [
                {
                    "id": pledge_id,
                    "campaign_id": campaign.pk,
                    "letter_version_id": letter_version_id,
                    "user_id": user_id,
                    "status": PledgeStatus.ACTIVE.value,
                    "source": PledgeSource.ONLINE.value,
                    "rpps": p.rpps,
                    "last_name": p.last_name,
                    "first_name": p.first_name,
                    "specialty": p.specialty,
                    "practice_mode": p.practice_mode,
                    "sector": p.sector,
                    "department_id": p.department_id,
                    "caisse_id": p.caisse_id,
                    "practice_address": p.practice_address,
                    "postal_code": p.postal_code,
                    "city": p.city,
                    "patient_list_size": p.patient_list_size,
                    "consented_pledge_at": p.signed_at,
                    "consented_data_at": p.signed_at,
                    "created_at": p.signed_at,
                    "updated_at": p.signed_at,
                }
                for user_id, pledge_id, p in zip(user_ids, pledge_ids, batch, strict=True)
            ],
        )
        writer.write(
            PledgeEvent,
            [
                {
                    "campaign_id": campaign.pk,
                    "department_id": p.department_id,
                    "pledge_id": pledge_id,
                    "kind": PledgeEventKind.PLEDGED.value,
                    "delta": 1,
                    "occurred_at": p.signed_at,
                }
                for pledge_id, p in zip(pledge_ids, batch, strict=True)
            ],
        )


@contextmanager
def _demo_lock() -> Iterator[None]:
    """One run at a time on PostgreSQL: two runs would read the same next serial.

    A session-level advisory lock, because each batch commits on its own. (SQLite runs are
    local and manual; two at once would fail on the unique RPPS claim, not corrupt anything.)
    """
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [DEMO_LOCK_KEY])
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [DEMO_LOCK_KEY])


def counts_refresh() -> tuple[float | None, str]:
    """Bring the published counts up to the rows: (seconds, note). Skipped if counting is missing."""
    try:
        from pledges.counting import counts_reconcile, counts_update
    except ImportError:
        return None, "pledges.counting is not available: counts were not updated"
    started = time.perf_counter()
    # counts_update folds the events after the bookmark (all of them on a fresh database);
    # counts_reconcile then adds the back-dated events that fell before an existing bookmark.
    # Those repairs are expected here, not drifts to warn about: one summary line instead.
    counting_logger = logging.getLogger("pledges.counting")
    level = counting_logger.level
    counting_logger.setLevel(logging.ERROR)
    try:
        counts_update()
        drifts = counts_reconcile()
    finally:
        counting_logger.setLevel(level)
    return time.perf_counter() - started, f"{len(drifts)} territory counts repaired by reconciliation"


def demo_pledges_create(
    *,
    campaign: Campaign,
    count: int,
    seed: int | None = None,
    batch_size: int = DEFAULT_BATCH,
    days: int = DEFAULT_DAYS,
    method: str = "auto",
    update_counts: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> DemoPledgesResult:
    """Add `count` synthetic physicians with active pledges to `campaign`, then refresh counts.

    `method`: "copy" (PostgreSQL COPY), "insert" (executemany) or "auto" (COPY on PostgreSQL).
    Raises ValueError when the campaign has no letter, territories are missing, or the demo
    RPPS block is exhausted.
    """
    if count < 1:
        raise ValueError("count must be at least 1")
    if batch_size < 1:
        raise ValueError("batch size must be at least 1")
    letter_version = campaign.current_letter_version
    if letter_version is None:
        raise ValueError(f"campaign {campaign.slug!r} has no letter version")
    use_copy = {"auto": connection.vendor == "postgresql", "copy": True, "insert": False}[method]
    if use_copy and connection.vendor != "postgresql":
        raise ValueError("COPY needs PostgreSQL")
    if seed is None:
        seed = random.SystemRandom().randrange(2**31)
    rng = random.Random(seed)  # noqa: S311 (synthetic data, reproducible by seed; not a secret)

    started = time.perf_counter()
    with _demo_lock():
        first_serial = demo_next_serial()
        if first_serial + count > 10**DEMO_SERIAL_DIGITS:
            raise ValueError("the demo RPPS block is exhausted")
        physicians, hot = physicians_generate(
            rng=rng, campaign=campaign, count=count, first_serial=first_serial, days=days, now=timezone.now()
        )
        writer = _RowWriter(use_copy=use_copy)
        done = 0
        for batch in _batches(physicians, batch_size):
            _write_batch(writer=writer, campaign=campaign, letter_version_id=letter_version.pk, batch=batch)
            done += len(batch)
            if progress is not None:
                progress(done, count)
    insert_seconds = time.perf_counter() - started

    counts_seconds, note = (None, "counts not updated (--no-counts)")
    if update_counts:
        counts_seconds, note = counts_refresh()
    logger.info("demo pledges: %s created in %.1f s", count, insert_seconds)
    return DemoPledgesResult(
        created=count,
        first_serial=first_serial,
        last_serial=first_serial + count - 1,
        method="copy" if use_copy else "insert",
        seed=seed,
        insert_seconds=insert_seconds,
        counts_seconds=counts_seconds,
        hot_departments=hot,
        counts_note=note,
    )
