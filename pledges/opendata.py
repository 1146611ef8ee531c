"""Open data: a campaign's published counts per territory, small counts hidden, as CSV and JSON.

Counts only, from the published TerritoryCount rows (what the public pages show): code, name,
level, pledges (empty when 1 to 4, with `suppressed` true), target and status. Answers are
cached for one counting interval, like the JSON API.
"""

import csv
import io
import json

from django.core.cache import cache

from deconv.csvsafe import csv_safe
from pledges.conditions import campaign_conditions
from pledges.models import Campaign
from pledges.selectors import (
    SMALL_COUNT_THRESHOLD,
    campaign_list_public,
    campaign_public_counts,
    counter_state_public,
)

OPEN_DATA_FIELDS = ("code", "name", "level", "pledges", "suppressed", "target", "status")


def open_data_rows(*, campaign: Campaign) -> tuple[list[dict], dict]:
    """(rows, counts): departments in official order, then regions, then the nation."""
    counts = campaign_public_counts(campaign=campaign)
    conditions = campaign_conditions(campaign=campaign)
    rows = []
    for entry in [*counts["departments"], *counts["regions"], counts["nation"]]:
        explanation = conditions.get((entry["level"], entry["code"]))
        rows.append(
            {
                "code": entry["code"],
                "name": entry["name"],
                "level": entry["level"],
                "pledges": entry["pledges"],
                "suppressed": entry["suppressed"],
                "target": explanation.target if explanation is not None else None,
                "status": (explanation.status or None) if explanation is not None else None,
            }
        )
    return rows, counts


def open_data_cache_key(*, slug: str, file_format: str) -> str:
    return f"pledges:open-data:{slug}:{file_format}"


def campaign_open_data(*, slug: str, file_format: str) -> tuple[bytes | None, int]:
    """(body, max-age) of the CSV or JSON file; (None, max-age) when no public campaign has this slug.

    Keyed by slug so that a cached answer costs no query; built at most once per counting interval.
    """
    key = open_data_cache_key(slug=slug, file_format=file_format)
    cached = cache.get(key)
    if cached is None:
        campaign = campaign_list_public().filter(slug=slug).first()
        if campaign is None:
            cached = (None, max(1, counter_state_public()["interval_seconds"]))
        else:
            cached = _open_data_build(campaign=campaign, file_format=file_format)
        cache.set(key, cached, cached[1])
    return cached


def _open_data_build(*, campaign: Campaign, file_format: str) -> tuple[bytes, int]:
    rows, counts = open_data_rows(campaign=campaign)
    interval = max(1, counts["interval_seconds"])
    if file_format == "json":
        updated_at = counts["updated_at"]
        body = json.dumps(
            {
                "campaign": campaign.slug,
                "updated_at": updated_at.isoformat() if updated_at else None,
                "small_counts_hidden_below": SMALL_COUNT_THRESHOLD,
                "territories": rows,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
        return body, interval
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(OPEN_DATA_FIELDS)
    for row in rows:
        writer.writerow(
            [
                csv_safe(row["code"]),
                csv_safe(row["name"]),
                row["level"],
                "" if row["pledges"] is None else row["pledges"],
                "true" if row["suppressed"] else "false",
                "" if row["target"] is None else row["target"],
                row["status"] or "",
            ]
        )
    return buffer.getvalue().encode(), interval
