"""Who may see and do what in a campaign's organizer pages: one place, checked by every view.

A superuser is a national organizer everywhere. Other accounts need an OrganizerRole for the
campaign (or for every campaign): national and observer see the whole country, a regional
delegate the departments of their region, a departmental delegate one department. Observers
only read.
"""

from dataclasses import dataclass

from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet

from pledges.enums import OrganizerRoleKind
from pledges.models import Campaign, OrganizerRole
from territories.models import Department


@dataclass(frozen=True)
class OrganizerScope:
    national: bool
    # Codes of the departments in scope; empty when national.
    department_codes: frozenset[str]
    can_act: bool

    def covers_department(self, code: str) -> bool:
        return self.national or code in self.department_codes


def organizer_scope(*, user, campaign: Campaign) -> OrganizerScope | None:
    """The union of the user's roles in this campaign, or None if they have none."""
    if not user.is_authenticated or not user.is_active:
        return None
    if user.is_superuser:
        return OrganizerScope(national=True, department_codes=frozenset(), can_act=True)
    roles = list(
        OrganizerRole.objects.filter(user=user).filter(Q(campaign=campaign) | Q(campaign__isnull=True))
    )
    if not roles:
        return None
    kinds = {role.kind for role in roles}
    can_act = bool(kinds - {OrganizerRoleKind.OBSERVER})
    if kinds & {OrganizerRoleKind.NATIONAL, OrganizerRoleKind.OBSERVER}:
        return OrganizerScope(national=True, department_codes=frozenset(), can_act=can_act)
    region_codes = [r.territory_code for r in roles if r.kind == OrganizerRoleKind.REGIONAL]
    department_codes = {r.territory_code for r in roles if r.kind == OrganizerRoleKind.DEPARTMENTAL}
    if region_codes:
        department_codes |= set(
            Department.objects.filter(region__code__in=region_codes).values_list("code", flat=True)
        )
    return OrganizerScope(national=False, department_codes=frozenset(department_codes), can_act=can_act)


def organizer_scope_required(*, user, campaign: Campaign, act: bool = False) -> OrganizerScope:
    """The scope, or PermissionDenied (403) for an account without a role or only observing."""
    scope = organizer_scope(user=user, campaign=campaign)
    if scope is None or (act and not scope.can_act):
        raise PermissionDenied
    return scope


def scope_filter(
    queryset: QuerySet, scope: OrganizerScope, *, department_field: str = "department__code"
) -> QuerySet:
    """Limit a queryset to the scope's departments (pledges by default)."""
    if scope.national:
        return queryset
    return queryset.filter(**{f"{department_field}__in": scope.department_codes})
