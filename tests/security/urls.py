"""Every URL pattern of the site, and a concrete URL for each, filled from a World."""

import re
from dataclasses import dataclass

from allauth.account.forms import default_token_generator
from allauth.account.models import EmailAddress, EmailConfirmationHMAC
from allauth.account.utils import user_pk_to_url_str
from django.urls import URLPattern, URLResolver, get_resolver

from tests.security.world import World

_PARAM = re.compile(r"<(?:\w+:)?(?P<name>\w+)>|\(\?P<(?P<regex_name>\w+)>[^)]*\)")


@dataclass(frozen=True)
class Route:
    route: str  # the pattern as written, prefixes included: the matrix's key
    name: str  # namespaced URL name ("pledges:pledge_mine"), "" for unnamed patterns

    def url(self, params: dict[str, str]) -> str:
        def fill(match: re.Match) -> str:
            return str(params[match["name"] or match["regex_name"]])

        path = _PARAM.sub(fill, self.route).replace("^", "").replace("$", "")
        return "/" + path.replace("\\", "")


def routes() -> list[Route]:
    """Every URL pattern, walking includes, in resolution order."""

    def walk(patterns, prefix: str, namespaces: tuple[str, ...]):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                extra = (pattern.namespace,) if pattern.namespace else ()
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern), namespaces + extra)
            elif isinstance(pattern, URLPattern):
                name = ":".join((*namespaces, pattern.name)) if pattern.name else ""
                yield Route(route=prefix + str(pattern.pattern), name=name)

    return list(walk(get_resolver().url_patterns, "", ()))


def params_for(route: Route, world: World) -> dict[str, str]:
    """Real values for the route's parameters: the objects the roles are tested against."""
    signer = world.users["signer"]
    objects = world.objects
    slug = (
        world.beta.slug
        if route.name in {"pledges:letter_sent", "pledges:letter_acknowledged"}
        else world.alpha.slug
    )
    if route.route.startswith("letters/link/"):
        token = world.tokens["letter_link"]
    elif route.route.startswith("email/stop/"):
        token = world.tokens["email_stop"]
    else:
        token = world.tokens["round_link"]
    address = EmailAddress.objects.get(user=signer)
    return {
        "slug": slug,
        "token": token,
        "letter_id": objects["signer_letter"].pk,
        "release_id": objects["release_01"].pk,
        "bundle_id": objects["bundle"].pk,
        "export_id": objects["export"].pk,
        "bulk_id": objects["bulk"].pk,
        "import_id": objects["directory_import"].pk,
        "pledge_id": world.pledges["signer_active"].pk,
        "key": (
            default_token_generator.make_token(signer)
            if "uidb36" in route.route
            else EmailConfirmationHMAC(address).key
        ),
        "uidb36": user_pk_to_url_str(signer),
        # The admin's own parameters: none of the roles tested is staff, so any value will do.
        "object_id": "1",
        "content_type_id": "1",
        "app_label": "pledges",
        "url": "no-such-admin-page/",
    }
