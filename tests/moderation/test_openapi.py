"""The OpenAPI description against the real answers of every public endpoint, offline.

Every JSON body is validated with jsonschema (Draft 2020-12, OpenAPI 3.1's dialect) against the
schema the description gives for its path and status, `$ref`s resolved within the document.
"""

import json

import pytest
from django.urls import Resolver404, resolve, reverse
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from pledges.counting import counts_update
from pledges.enums import CampaignStatus, TerritoryLevel
from pledges.ledger import ledger_append_pending
from pledges.models import CounterState, ThresholdRule
from pledges.openapi import openapi_spec
from tests.moderation.factories import pledge_make
from tests.pledges.factories import CampaignFactory

pytestmark = pytest.mark.django_db

SPEC_URI = "urn:deconv:openapi"
# Every public, anonymous endpoint of pledges/urls.py that answers data: each must be described.
PUBLIC_URL_NAMES = {
    "api_campaign_list",
    "api_campaign_detail",
    "api_campaign_count",
    "api_campaign_digests",
    "open_data_json",
    "open_data_csv",
    "ledger_export",
    "api_openapi",
}


@pytest.fixture
def spec():
    return openapi_spec()


def validator(spec: dict, pointer: str) -> Draft202012Validator:
    registry = Registry().with_resource(
        SPEC_URI, Resource.from_contents(spec, default_specification=DRAFT202012)
    )
    return Draft202012Validator(
        {"$ref": f"{SPEC_URI}#{pointer}"}, registry=registry, format_checker=FormatChecker()
    )


def escape(path: str) -> str:
    return path.replace("~", "~0").replace("/", "~1")


def check(spec: dict, template: str, url: str, client, status: int = 200, **params):
    """GET `url`, and validate its JSON body against the description of `template` at `status`."""
    response = client.get(url, params)
    assert response.status_code == status, (url, response.content[:200])
    described = spec["paths"][template]["get"]["responses"][str(status)]
    content_type = response["Content-Type"].split(";")[0]
    media = described["content"][content_type]
    if content_type == "application/json":
        pointer = f"/paths/{escape(template)}/get/responses/{status}/content/application~1json/schema"
        errors = sorted(validator(spec, pointer).iter_errors(response.json()), key=str)
        assert errors == [], [f"{list(error.absolute_path)}: {error.message}" for error in errors]
    else:
        assert media["schema"] == {"type": "string"}
    return response


@pytest.fixture
def published(campaign):
    """Paris 6 pledges (shown), Ain 2 (hidden), a department rule, counts and a ledger digest."""
    CounterState.objects.update_or_create(pk=1, defaults={"lag_seconds": 0})
    ThresholdRule.objects.create(campaign=campaign, level=TerritoryLevel.DEPARTMENT, min_count=10)
    for _index in range(6):
        pledge_make(campaign=campaign, department="75")
    for _index in range(2):
        pledge_make(campaign=campaign, department="01")
    counts_update()
    ledger_append_pending()
    CampaignFactory(slug="en-pause", status=CampaignStatus.PAUSED)
    return campaign


def test_the_description_is_openapi_3_1_with_valid_schemas_and_examples(spec):
    assert spec["openapi"] == "3.1.0"
    assert spec["info"]["title"] and spec["info"]["version"]
    for schema in spec["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)
    for template, item in spec["paths"].items():
        assert set(item) <= {"get", "parameters"}, template
        for status, response in item["get"]["responses"].items():
            assert response["description"], (template, status)
            for content_type, media in response.get("content", {}).items():
                if "example" in media and content_type == "application/json":
                    pointer = (
                        f"/paths/{escape(template)}/get/responses/{status}/content/application~1json/schema"
                    )
                    errors = list(validator(spec, pointer).iter_errors(media["example"]))
                    assert errors == [], (template, status, [error.message for error in errors])


def test_every_described_path_is_a_route_and_every_public_route_is_described(spec, published):
    described = set()
    for template in spec["paths"]:
        try:
            match = resolve(template.replace("{slug}", published.slug))
        except Resolver404:
            pytest.fail(f"{template} is described but not routed")
        described.add(match.url_name)
    assert described == PUBLIC_URL_NAMES


def test_every_endpoint_answers_as_described(client, spec, published):
    slug = published.slug
    check(spec, "/api/v1/campaigns/", reverse("pledges:api_campaign_list"), client)
    detail = check(spec, "/api/v1/campaigns/{slug}/", f"/api/v1/campaigns/{slug}/", client)
    check(spec, "/api/v1/campaigns/{slug}/count.json", f"/api/v1/campaigns/{slug}/count.json", client)
    check(spec, "/api/v1/campaigns/{slug}/digests/", f"/api/v1/campaigns/{slug}/digests/", client)
    check(spec, "/campaigns/{slug}/open-data.json", f"/campaigns/{slug}/open-data.json", client)
    check(spec, "/campaigns/{slug}/open-data.csv", f"/campaigns/{slug}/open-data.csv", client)
    check(spec, "/campaigns/{slug}/ledger.json", f"/campaigns/{slug}/ledger.json", client)
    check(
        spec, "/campaigns/{slug}/ledger.json", f"/campaigns/{slug}/ledger.json", client, status=400, after="x"
    )
    check(spec, "/api/v1/openapi.json", reverse("pledges:api_openapi"), client)
    # The optional fields are there now: the description covers them, not only their absence.
    paris = next(entry for entry in detail.json()["territories"] if entry["code"] == "75")
    assert {"target", "missing", "status"} <= set(paris)


@pytest.mark.parametrize(
    "template",
    ["/api/v1/campaigns/{slug}/", "/api/v1/campaigns/{slug}/count.json", "/api/v1/campaigns/{slug}/digests/"],
)
def test_unknown_campaigns_answer_the_described_error(client, spec, template):
    check(spec, template, template.replace("{slug}", "inconnue"), client, status=404)


def test_answers_without_the_optional_fields_are_valid_too(spec):
    minimal = {
        "slug": "c",
        "title": "C",
        "status": "open",
        "pledges": None,
        "updated_at": None,
        "territories": [
            {"code": "01", "name": "Ain", "level": "department", "pledges": 6, "suppressed": False}
        ],
    }
    pointer = "/components/schemas/CampaignDetail"

    assert list(validator(spec, pointer).iter_errors(minimal)) == []
    assert list(validator(spec, pointer).iter_errors({**minimal, "surprise": 1})) != []


def test_openapi_json_is_public_cacheable_and_in_french_by_default(client, settings):
    settings.SITE_URL = "https://deconv.example"

    response = client.get(reverse("pledges:api_openapi"), HTTP_ORIGIN="https://union.example")

    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "*"
    assert response["Cache-Control"] == "public, max-age=3600"
    assert json.loads(response.content)["servers"] == [{"url": "https://deconv.example"}]
    assert client.post(reverse("pledges:api_openapi")).status_code == 405


def test_the_api_page_shows_every_endpoint_with_examples_and_notes(client, spec):
    response = client.get(reverse("pledges:api_docs"))

    assert response.status_code == 200
    content = response.content.decode()
    for template in spec["paths"]:
        assert f"GET {template}" in content
    assert "stale-while-revalidate" in content
    assert "Access-Control-Allow-Origin" in content
    assert "&quot;pledges&quot;: 5007" in content
    # The fields of the nested territory objects are explained, optional ones marked.
    assert '<code>round_ends_at</code> <span class="small">(optional)</span>' in content
