"""Server-drawn SVG figures: the map of departments coloured by progress, and the pledges-per-day chart.

The map is a standalone SVG document shown through <img>: the page's Content-Security-Policy
(style-src 'self') forbids inline styles, so the map carries its own <style> and the view that
serves it gives it its own policy. Shapes come from static/maps/france-departments.svg (sources
and licences in static/maps/README.md), read once per process.

The chart is inline SVG in the page, styled by site.css through classes (no style attribute).
"""

import functools
import math
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from xml.etree import ElementTree

from django.conf import settings
from django.core.cache import cache
from django.utils import formats, translation
from django.utils.html import escape
from django.utils.translation import gettext, ngettext

SHAPES_PATH = Path(settings.BASE_DIR) / "static" / "maps" / "france-departments.svg"
_SVG = "{http://www.w3.org/2000/svg}"

MAP_WIDTH = 613
# Height of the shapes file's drawing; the legend goes below it.
_SHAPES_HEIGHT = 690
_LEGEND_ROW = 18
_LEGEND_COLUMNS = 2

# Fill classes, lightest to darkest; "met" is green so that reaching the target stands out.
# Blues from ColorBrewer's sequential "Blues" (readable by the colour-blind and in greyscale).
_STYLE = """
svg{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif}
.d{stroke:#5f6b7a;stroke-width:.35;stroke-linejoin:round}
.zero{fill:#f3f5f8}.p1{fill:#c6dbef}.p2{fill:#9ecae1}.p3{fill:#6baed6}.p4{fill:#3182bd}.p5{fill:#08519c}
.met{fill:#17693a}.sup{fill:url(#hatch)}.na{fill:#d4d7dc}.out{fill:#ffffff;stroke:#b4bbc6}
.frame{fill:none;stroke:#b4bbc6;stroke-width:.6}
.label{font-size:9px;fill:#4a5160}.legend{font-size:10.5px;fill:#1b1d21}.legend-title{font-size:11px;font-weight:600;fill:#1b1d21}
.swatch{stroke:#5f6b7a;stroke-width:.6}
"""


@dataclass(frozen=True)
class MapDepartment:
    code: str
    name: str
    # None: hidden small count (public maps). 0 and up: the count.
    count: int | None
    target: int | None = None
    population: int | None = None
    in_scope: bool = True


@dataclass(frozen=True)
class _Shape:
    code: str
    d: str


@dataclass(frozen=True)
class _Group:
    group_id: str
    frame: tuple[float, float, float, float]
    shapes: tuple[_Shape, ...]


@functools.cache
def _shapes() -> tuple[_Group, ...]:
    # Our own file from the repository, not user input: ElementTree is safe here.
    root = ElementTree.parse(SHAPES_PATH).getroot()  # noqa: S314
    groups = []
    for group in root.iter(f"{_SVG}g"):
        frame = tuple(float(v) for v in group.get("data-frame", "0 0 0 0").split())
        shapes = tuple(_Shape(code=p.get("data-code"), d=p.get("d")) for p in group.iter(f"{_SVG}path"))
        groups.append(_Group(group_id=group.get("id", ""), frame=frame, shapes=shapes))
    return tuple(groups)


def map_department_codes() -> set[str]:
    """Every department code the shapes file draws."""
    return {shape.code for group in _shapes() for shape in group.shapes}


# --- Colour bins -------------------------------------------------------------------------------

# (upper bound in %, class): progress toward the target.
TARGET_BINS = ((Decimal(25), "p1"), (Decimal(50), "p2"), (Decimal(75), "p3"), (Decimal(100), "p4"))
# Share of the reference population when no department has a target: a few % is already a lot.
POPULATION_BINS = ((Decimal("2.5"), "p1"), (Decimal(5), "p2"), (Decimal(10), "p3"), (Decimal(20), "p4"))


def _percent(part: int, whole: int | None) -> Decimal | None:
    if not whole:
        return None
    return Decimal(part) * 100 / Decimal(whole)


def department_class(department: MapDepartment, *, by_target: bool) -> str:
    """The fill class of one department (see _STYLE)."""
    if not department.in_scope:
        return "out"
    if department.count is None:
        return "sup"
    if department.count == 0:
        return "zero"
    percent = _percent(department.count, department.target if by_target else department.population)
    if percent is None:
        return "na"
    bins = TARGET_BINS if by_target else POPULATION_BINS
    for upper, name in bins:
        if percent < upper:
            return name
    return "met" if by_target else "p5"


def _legend(*, by_target: bool, classes: set[str]) -> tuple[str, list[tuple[str, str]]]:
    if by_target:
        title = gettext("Signatures as a share of the department's target")
        scale = [
            ("p1", gettext("under 25 %")),
            ("p2", gettext("25 to 50 %")),
            ("p3", gettext("50 to 75 %")),
            ("p4", gettext("75 to 100 %")),
            ("met", gettext("target reached")),
        ]
        no_ratio = gettext("no target")
    else:
        title = gettext("Signatures as a share of the reference population")
        scale = [
            ("p1", gettext("under 2.5 %")),
            ("p2", gettext("2.5 to 5 %")),
            ("p3", gettext("5 to 10 %")),
            ("p4", gettext("10 to 20 %")),
            ("p5", gettext("20 % or more")),
        ]
        no_ratio = gettext("population unknown")
    entries = [("zero", gettext("no signature")), *scale]
    optional = [
        ("sup", gettext("fewer than 5 signatures (hidden)")),
        ("na", no_ratio),
        ("out", gettext("outside your territories")),
    ]
    entries += [(name, label) for name, label in optional if name in classes]
    return title, entries


def _tooltip(department: MapDepartment, *, by_target: bool) -> str:
    name = f"{department.name} ({department.code})"
    if not department.in_scope:
        return gettext("%(name)s: outside your territories") % {"name": name}
    if department.count is None:
        return gettext("%(name)s: fewer than 5 signatures") % {"name": name}
    text = ngettext("%(name)s: %(count)s signature", "%(name)s: %(count)s signatures", department.count) % {
        "name": name,
        "count": formats.number_format(department.count, force_grouping=True),
    }
    whole = department.target if by_target else department.population
    percent = _percent(department.count, whole)
    if percent is not None:
        share = formats.number_format(percent, decimal_pos=1)
        if by_target:
            text += ", " + gettext("%(share)s %% of the target of %(target)s") % {
                "share": share,
                "target": formats.number_format(whole, force_grouping=True),
            }
        else:
            text += ", " + gettext("%(share)s %% of the reference population") % {"share": share}
    return text


def department_map_svg(*, departments: list[MapDepartment], title: str, description: str) -> str:
    """A standalone SVG document: every department coloured, overseas and Paris insets, a legend.

    Colours follow progress toward each department's target when any department in scope has
    one, else the share of the reference population. Each shape has a <title> (a tooltip when
    the SVG is opened on its own); the page gives the same figures in a table.
    """
    by_code = {d.code: d for d in departments}
    by_target = any(d.target for d in departments if d.in_scope)
    parts = []
    classes: set[str] = set()
    for group in _shapes():
        parts.append(f'<g id="{escape(group.group_id)}">')
        x, y, w, h = group.frame
        if group.group_id != "metropole":
            parts.append(f'<rect class="frame" x="{x:g}" y="{y:g}" width="{w:g}" height="{h:g}"/>')
        for shape in group.shapes:
            department = by_code.get(shape.code) or MapDepartment(
                code=shape.code, name=shape.code, count=None, in_scope=False
            )
            css = department_class(department, by_target=by_target)
            classes.add(css)
            parts.append(
                f'<path class="d {css}" data-code="{escape(shape.code)}" d="{shape.d}">'
                f"<title>{escape(_tooltip(department, by_target=by_target))}</title></path>"
            )
        label = _inset_label(group=group, by_code=by_code)
        if label:
            parts.append(f'<text class="label" x="{x + 3:g}" y="{y + h + 10:g}">{escape(label)}</text>')
        parts.append("</g>")

    legend_title, entries = _legend(by_target=by_target, classes=classes)
    rows = math.ceil(len(entries) / _LEGEND_COLUMNS)
    top = _SHAPES_HEIGHT + 14
    height = top + 12 + rows * _LEGEND_ROW + 6
    legend = [f'<g id="legend"><text class="legend-title" x="8" y="{top}">{escape(legend_title)}</text>']
    for index, (css, label) in enumerate(entries):
        column, row = divmod(index, rows)
        lx = 8 + column * (MAP_WIDTH // _LEGEND_COLUMNS)
        ly = top + 8 + row * _LEGEND_ROW
        legend.append(
            f'<rect class="swatch {css}" x="{lx}" y="{ly}" width="16" height="12"/>'
            f'<text class="legend" x="{lx + 22}" y="{ly + 10}">{escape(label)}</text>'
        )
    legend.append("</g>")

    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {MAP_WIDTH} {height}" '
        f'width="{MAP_WIDTH}" height="{height}" role="img" aria-labelledby="map-title map-desc" '
        f'lang="{escape(translation.get_language() or settings.LANGUAGE_CODE)}">'
        f'<title id="map-title">{escape(title)}</title><desc id="map-desc">{escape(description)}</desc>'
        f"<style>{_STYLE}</style>"
        '<defs><pattern id="hatch" width="5" height="5" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
        '<rect width="5" height="5" fill="#eef1f5"/><line x1="0" y1="0" x2="0" y2="5" stroke="#8a94a3" stroke-width="1.6"/>'
        "</pattern></defs>" + "".join(parts) + "".join(legend) + "</svg>"
    )


def _inset_label(*, group: _Group, by_code: dict[str, MapDepartment]) -> str:
    if group.group_id == "metropole":
        return ""
    if group.group_id == "inset-paris":
        return gettext("Paris and inner suburbs")
    code = group.shapes[0].code if group.shapes else ""
    department = by_code.get(code)
    return f"{code} {department.name}" if department else code


# --- Public map, cached ------------------------------------------------------------------------


def public_map_cache_key(*, slug: str) -> str:
    return f"pledges:map:public:{slug}:{translation.get_language()}"


def campaign_public_map_svg(*, slug: str) -> tuple[bytes | None, int]:
    """(SVG, max-age) of a public campaign's map, small counts hidden; (None, max-age) for no such campaign.

    Keyed by slug so that a cached answer costs no query at all (like the JSON API); built at most
    once per counting interval, unknown slugs included.
    """
    from pledges.selectors import campaign_list_public, counter_state_public

    key = public_map_cache_key(slug=slug)
    cached = cache.get(key)
    if cached is None:
        campaign = campaign_list_public().filter(slug=slug).first()
        if campaign is None:
            cached = (None, max(1, counter_state_public()["interval_seconds"]))
        else:
            cached = _campaign_public_map_build(campaign=campaign)
        cache.set(key, cached, cached[1])
    return cached


def _campaign_public_map_build(*, campaign) -> tuple[bytes, int]:
    from pledges.conditions import campaign_conditions
    from pledges.selectors import campaign_public_counts
    from territories.selectors import reference_population_latest

    counts = campaign_public_counts(campaign=campaign)
    conditions = campaign_conditions(campaign=campaign)
    populations = reference_population_latest(kind=campaign.reference_population_kind)
    departments = []
    for entry in counts["departments"]:
        explanation = conditions.get(("department", entry["code"]))
        departments.append(
            MapDepartment(
                code=entry["code"],
                name=entry["name"],
                count=entry["pledges"],
                target=explanation.target if explanation is not None else None,
                population=populations.get(entry["code"]),
            )
        )
    svg = department_map_svg(
        departments=departments,
        title=gettext("Signatures by department: %(campaign)s") % {"campaign": campaign.title},
        description=gettext(
            "Map of France by department, overseas departments included, coloured by progress. "
            "Departments with 1 to 4 signatures are hatched: their count is not published. "
            "The table of signatures by department on the campaign page gives the same figures."
        ),
    )
    return svg.encode(), max(1, counts["interval_seconds"])


# --- Pledges per day ---------------------------------------------------------------------------

CHART_WIDTH = 720
CHART_HEIGHT = 220
_CHART_LEFT, _CHART_RIGHT, _CHART_TOP, _CHART_BOTTOM = 44, 8, 10, 26


def _nice_step(maximum: int, ticks: int = 4) -> int:
    """A round gridline step (1, 2, 5 x 10^n) so that `ticks` steps cover `maximum`."""
    raw = max(1, maximum) / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if factor * magnitude >= raw:
            return max(1, int(factor * magnitude))
    return int(10 * magnitude)


def daily_series(daily: list[tuple[date, int]], *, today: date) -> list[tuple[date, int]]:
    """Every day from the first pledge to today (or the last pledge), days without pledges at 0."""
    if not daily:
        return []
    counts = dict(daily)
    first, last = daily[0][0], max(daily[-1][0], today)
    return [
        (first + timedelta(days=i), counts.get(first + timedelta(days=i), 0))
        for i in range((last - first).days + 1)
    ]


def daily_chart_svg(*, series: list[tuple[date, int]], title: str, description: str) -> str:
    """Inline SVG bar chart, one bar per day; classes only, styled by site.css (chart__*)."""
    plot_w = CHART_WIDTH - _CHART_LEFT - _CHART_RIGHT
    plot_h = CHART_HEIGHT - _CHART_TOP - _CHART_BOTTOM
    maximum = max((n for _, n in series), default=0)
    step = _nice_step(maximum)
    top_value = step * max(1, math.ceil(maximum / step))
    parts = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}" '
        'role="img" aria-labelledby="chart-title chart-desc">'
        f'<title id="chart-title">{escape(title)}</title><desc id="chart-desc">{escape(description)}</desc>'
    ]
    for value in range(0, top_value + 1, step):
        y = _CHART_TOP + plot_h - plot_h * value / top_value
        parts.append(
            f'<line class="chart__grid" x1="{_CHART_LEFT}" x2="{CHART_WIDTH - _CHART_RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="chart__axis" x="{_CHART_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(formats.number_format(value, force_grouping=True))}</text>"
        )
    if series:
        slot = plot_w / len(series)
        width = max(0.5, slot * 0.8)
        label_every = max(1, math.ceil(len(series) / 6))
        for index, (day, n) in enumerate(series):
            x = _CHART_LEFT + index * slot + (slot - width) / 2
            h = plot_h * n / top_value
            label = ngettext("%(date)s: %(count)s signature", "%(date)s: %(count)s signatures", n) % {
                "date": formats.date_format(day, "SHORT_DATE_FORMAT"),
                "count": formats.number_format(n, force_grouping=True),
            }
            parts.append(
                f'<rect class="chart__bar" x="{x:.2f}" y="{_CHART_TOP + plot_h - h:.2f}" width="{width:.2f}" '
                f'height="{h:.2f}"><title>{escape(label)}</title></rect>'
            )
            last = index == len(series) - 1
            # A label every few bars, and the last day's unless it would overlap the previous one.
            if index % label_every == 0 or (last and index % label_every >= label_every / 2):
                anchor, lx = ("end", x + width) if last else ("middle", x + width / 2)
                parts.append(
                    f'<text class="chart__axis" x="{lx:.1f}" y="{CHART_HEIGHT - 8}" text-anchor="{anchor}">'
                    f"{escape(formats.date_format(day, 'j M'))}</text>"
                )
    parts.append("</svg>")
    return "".join(parts)
