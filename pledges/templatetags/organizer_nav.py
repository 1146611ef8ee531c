"""{% organizer_nav_visible as show %}: whether base.html shows the "Organisation" link.

At most one query per page, for signed-in accounts without superuser status; none for visitors.
"""

from django import template

from pledges.selectors_organizer import user_has_organizer_role

register = template.Library()


@register.simple_tag(takes_context=True)
def organizer_nav_visible(context) -> bool:
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return False
    if not hasattr(request, "_organizer_nav_visible"):
        request._organizer_nav_visible = user_has_organizer_role(user=user)
    return request._organizer_nav_visible
