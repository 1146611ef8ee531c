"""The public API's description, fuzzed: any slug and any query answer a status the description
declares, with a body that validates against the schema it gives for that status.

tests/moderation/test_openapi.py checks the described answers with real data; here Hypothesis
draws the parameters (slugs real, plausible or hostile; `after` of every shape; stray parameters).
"""

import urllib.parse

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pledges.openapi import openapi_spec
from tests.moderation.test_openapi import escape, validator
from tests.pledges.factories import CampaignFactory, LetterVersionFactory

REAL_SLUG = "api-fuzz"

slugs = st.one_of(
    st.just(REAL_SLUG),
    st.from_regex(r"[-a-zA-Z0-9_]{1,90}", fullmatch=True),
    st.text(max_size=120).filter(lambda s: "/" not in s and s not in {".", ".."}),
    st.sampled_from(["<script>", "' OR 1=1 --", "%00", "..%2f..", "x" * 5000, "🩺"]),
)
query_values = st.one_of(
    st.integers(-(10**20), 10**20).map(str),
    st.sampled_from(["", "-1", "1e9", "NaN", "0x10", " 1", "1.5", "[]", "{}", "null"]),
    st.text(max_size=40),
)


@pytest.fixture(scope="module")
def spec():
    return openapi_spec()


@pytest.mark.django_db
def test_any_parameters_get_a_described_answer(spec):
    campaign = CampaignFactory(slug=REAL_SLUG)
    LetterVersionFactory(campaign=campaign)
    client = Client(raise_request_exception=False)
    operations = [(path, ops["get"]) for path, ops in spec["paths"].items() if "get" in ops]
    tried = []

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(
        operation=st.sampled_from(operations),
        slug=slugs,
        query=st.dictionaries(
            st.sampled_from(["after", "lang", "format", "callback", "page"]), query_values, max_size=3
        ),
    )
    def described(operation, slug, query):
        template, described_op = operation
        url = template.replace("{slug}", urllib.parse.quote(slug, safe=""))
        response = client.get(url, query)
        tried.append(response.status_code)
        declared = described_op["responses"]
        assert str(response.status_code) in declared, (url, query, response.status_code)
        content = declared[str(response.status_code)].get("content", {})
        if response["Content-Type"].startswith("application/json") and "application/json" in content:
            pointer = f"/paths/{escape(template)}/get/responses/{response.status_code}/content/application~1json/schema"
            validator(spec, pointer).validate(response.json())

    described()
    assert len(tried) >= 60 and 500 not in tried
