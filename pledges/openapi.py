"""The public JSON API described in OpenAPI 3.1, served at /api/v1/openapi.json and shown at /api/.

One description for machines and people: the /api/ page is rendered from this dictionary, and
tests/moderation/test_openapi.py validates every endpoint's real answers against its schemas
(JSON Schema 2020-12, which OpenAPI 3.1 uses as is), so the description cannot drift silently.

Fields that features add over time (a territory's condition: target, missing, status,
round_ends_at, released_at; the ledger's digest) are optional and nullable: an answer without
them is valid, and so is one with them. Objects forbid undocumented fields, so a new field fails
the test until it is described here.

Texts are translated when the description is built (the request's language; French first).
"""

from django.conf import settings
from django.utils.translation import gettext

from pledges.enums import CampaignStatus, TerritoryLevel, TerritoryStatus
from pledges.selectors import SMALL_COUNT_THRESHOLD

OPENAPI_VERSION = "3.1.0"
API_VERSION = "1.0.0"


def _nullable(schema: dict) -> dict:
    """The same schema, also accepting null (3.1 spells it with a type list, not `nullable`)."""
    kind = schema.get("type")
    if isinstance(kind, str):
        return {
            **schema,
            "type": [kind, "null"],
            **({"enum": [*schema["enum"], None]} if "enum" in schema else {}),
        }
    return {"anyOf": [schema, {"type": "null"}]}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(properties: dict, *, required: list[str] | None = None, description: str = "") -> dict:
    schema = {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        "additionalProperties": False,
    }
    if description:
        schema["description"] = description
    return schema


def _schemas() -> dict:
    count = {
        "type": ["integer", "null"],
        "minimum": 0,
        "description": gettext(
            "Number of pledges; null when between 1 and %(below)s (hidden so no one is recognised)."
        )
        % {"below": SMALL_COUNT_THRESHOLD - 1},
    }
    timestamp = {"type": "string", "format": "date-time"}
    slug = {"type": "string", "pattern": "^[-a-zA-Z0-9_]+$", "maxLength": 80}
    digest = _object(
        {
            "sequence": {"type": "integer", "minimum": 0},
            "head_hash": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            "published_at": timestamp,
        },
        description=gettext(
            "The latest digest of the public ledger: anyone can recompute head_hash from ledger.json."
        ),
    )
    return {
        "Error": _object({"error": {"type": "string"}}),
        "CampaignSummary": _object(
            {
                "slug": slug,
                "title": {"type": "string"},
                "status": {
                    "type": "string",
                    "enum": [CampaignStatus.OPEN, CampaignStatus.PAUSED, CampaignStatus.CLOSED],
                },
                "pledges": count,
                "url": {"type": "string", "format": "uri"},
            }
        ),
        "CampaignList": _object({"campaigns": {"type": "array", "items": _ref("CampaignSummary")}}),
        "Territory": _object(
            {
                "code": {
                    "type": "string",
                    "description": gettext("Department or region code; FR for the nation."),
                },
                "name": {"type": "string"},
                "level": {"type": "string", "enum": TerritoryLevel.values},
                "pledges": count,
                "suppressed": {"type": "boolean", "description": gettext("True when the count is hidden.")},
                "target": {
                    "type": ["integer", "null"],
                    "minimum": 0,
                    "description": gettext(
                        "Pledges needed in this territory; null without a rule at this level."
                    ),
                },
                "missing": {
                    "type": ["integer", "null"],
                    "minimum": 0,
                    "description": gettext(
                        "Pledges still needed; null without a target or when the count is hidden."
                    ),
                },
                "status": _nullable(
                    {
                        "type": "string",
                        "enum": TerritoryStatus.values,
                        "description": gettext("Where the territory stands; null outside the release level."),
                    }
                ),
                "round_ends_at": {**timestamp, "type": ["string", "null"]},
                "released_at": {**timestamp, "type": ["string", "null"]},
            },
            required=["code", "name", "level", "pledges", "suppressed"],
        ),
        "Digest": digest,
        "CampaignDetail": _object(
            {
                "slug": slug,
                "title": {"type": "string"},
                "status": {
                    "type": "string",
                    "enum": [CampaignStatus.OPEN, CampaignStatus.PAUSED, CampaignStatus.CLOSED],
                },
                "pledges": count,
                "updated_at": {
                    **timestamp,
                    "type": ["string", "null"],
                    "description": gettext("Counts include the pledges recorded up to this moment."),
                },
                "territories": {
                    "type": "array",
                    "items": _ref("Territory"),
                    "description": gettext(
                        "Every department (official order), every region, then the nation."
                    ),
                },
                "digest": _nullable(_ref("Digest")),
            },
            required=["slug", "title", "status", "pledges", "updated_at", "territories"],
        ),
        "Count": _object(
            {"slug": slug, "pledges": count, "updated_at": {**timestamp, "type": ["string", "null"]}}
        ),
        "DigestList": _object(
            {
                "slug": slug,
                "digests": {
                    "type": "array",
                    "items": _object({**digest["properties"], "pledges": count}),
                    "description": gettext("Newest first, with the national count each digest vouches for."),
                },
            }
        ),
        "OpenData": _object(
            {
                "campaign": slug,
                "updated_at": {**timestamp, "type": ["string", "null"]},
                "small_counts_hidden_below": {"type": "integer", "minimum": 1},
                "territories": {
                    "type": "array",
                    "items": _object(
                        {
                            "code": {"type": "string"},
                            "name": {"type": "string"},
                            "level": {"type": "string", "enum": TerritoryLevel.values},
                            "pledges": count,
                            "suppressed": {"type": "boolean"},
                            "target": {"type": ["integer", "null"], "minimum": 0},
                            "status": _nullable({"type": "string", "enum": TerritoryStatus.values}),
                        }
                    ),
                },
            }
        ),
        "LedgerPage": {
            "type": "object",
            "description": gettext(
                "A page of the public ledger, with what a verifier needs to recompute its hashes."
            ),
            "properties": {
                "campaign": {"type": "object", "properties": {"id": {"type": "integer"}, "slug": slug}},
                "hash": {"type": "object"},
                "after": {"type": "integer", "minimum": 0},
                "entries": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "sequence": {"type": "integer"},
                            "kind": {"type": "string"},
                            "receipt_id": {"type": "string"},
                            "department_code": {"type": "string"},
                            "payload": {},
                            "occurred_at": {"type": "string"},
                            "previous_hash": {"type": "string"},
                            "entry_hash": {"type": "string"},
                        },
                        "required": ["sequence", "kind", "occurred_at", "previous_hash", "entry_hash"],
                    },
                },
                "next": {"type": ["string", "null"]},
                "latest_digest": {"type": ["object", "null"]},
            },
            "required": ["campaign", "after", "entries", "next"],
        },
    }


def _json(schema: str, example: dict, description: str) -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": _ref(schema), "example": example}},
    }


_CACHE_HEADERS = {
    "Cache-Control": {
        "description": "public, max-age=<interval>, stale-while-revalidate=<three intervals>",
        "schema": {"type": "string"},
    },
    "Access-Control-Allow-Origin": {"schema": {"type": "string", "const": "*"}},
}
_EXAMPLE_TIME = "2024-03-13T09:30:15+00:00"
_EXAMPLE_HASH = "9f2c" * 16


def _slug_parameter() -> dict:
    return {
        "name": "slug",
        "in": "path",
        "required": True,
        "description": gettext("The campaign's short name, as in its page's address."),
        "schema": {"type": "string", "maxLength": 80},
        "example": "deconventionnement-2024",
    }


def _not_found() -> dict:
    return _json("Error", {"error": "campaign not found"}, gettext("No public campaign has this short name."))


def _paths(site_url: str) -> dict:
    slug = "deconventionnement-2024"
    territory = {
        "code": "64",
        "name": "Pyrénées-Atlantiques",
        "level": "department",
        "pledges": 65,
        "suppressed": False,
    }
    condition = {
        "target": 120,
        "missing": 55,
        "status": "collecting",
        "round_ends_at": None,
        "released_at": None,
    }
    digest = {"sequence": 4071, "head_hash": _EXAMPLE_HASH, "published_at": _EXAMPLE_TIME}
    get = gettext
    return {
        "/api/v1/campaigns/": {
            "get": {
                "operationId": "campaign_list",
                "summary": get("Public campaigns and their national count"),
                "description": get("Open, paused and closed campaigns; drafts are not listed."),
                "responses": {
                    "200": {
                        **_json(
                            "CampaignList",
                            {
                                "campaigns": [
                                    {
                                        "slug": slug,
                                        "title": "Déconventionnement 2024",
                                        "status": "open",
                                        "pledges": 5007,
                                        "url": f"{site_url}/campaigns/{slug}/",
                                    }
                                ]
                            },
                            get("The campaigns."),
                        ),
                        "headers": _CACHE_HEADERS,
                    }
                },
            }
        },
        "/api/v1/campaigns/{slug}/": {
            "parameters": [_slug_parameter()],
            "get": {
                "operationId": "campaign_detail",
                "summary": get("A campaign's counts per territory and their conditions"),
                "responses": {
                    "200": {
                        **_json(
                            "CampaignDetail",
                            {
                                "slug": slug,
                                "title": "Déconventionnement 2024",
                                "status": "open",
                                "pledges": 5007,
                                "updated_at": _EXAMPLE_TIME,
                                "territories": [
                                    {**territory, **condition},
                                    {
                                        "code": "75",
                                        "name": "Paris",
                                        "level": "department",
                                        "pledges": None,
                                        "suppressed": True,
                                    },
                                    {
                                        "code": "FR",
                                        "name": "France",
                                        "level": "nation",
                                        "pledges": 5007,
                                        "suppressed": False,
                                    },
                                ],
                                "digest": digest,
                            },
                            get("The campaign."),
                        ),
                        "headers": _CACHE_HEADERS,
                    },
                    "404": _not_found(),
                },
            },
        },
        "/api/v1/campaigns/{slug}/count.json": {
            "parameters": [_slug_parameter()],
            "get": {
                "operationId": "campaign_count",
                "summary": get("The national count alone: the lightest answer, for counters on other sites"),
                "responses": {
                    "200": {
                        **_json(
                            "Count",
                            {"slug": slug, "pledges": 5007, "updated_at": _EXAMPLE_TIME},
                            get("The national count."),
                        ),
                        "headers": _CACHE_HEADERS,
                    },
                    "404": _not_found(),
                },
            },
        },
        "/api/v1/campaigns/{slug}/digests/": {
            "parameters": [_slug_parameter()],
            "get": {
                "operationId": "campaign_digests",
                "summary": get("The latest digests of the public ledger"),
                "responses": {
                    "200": {
                        **_json(
                            "DigestList",
                            {"slug": slug, "digests": [{**digest, "pledges": 5007}]},
                            get("The digests."),
                        ),
                        "headers": _CACHE_HEADERS,
                    },
                    "404": _not_found(),
                },
            },
        },
        "/campaigns/{slug}/open-data.json": {
            "parameters": [_slug_parameter()],
            "get": {
                "operationId": "open_data_json",
                "summary": get("Open data: counts per territory (JSON)"),
                "responses": {
                    "200": {
                        **_json(
                            "OpenData",
                            {
                                "campaign": slug,
                                "updated_at": _EXAMPLE_TIME,
                                "small_counts_hidden_below": SMALL_COUNT_THRESHOLD,
                                "territories": [{**territory, "target": 120, "status": "collecting"}],
                            },
                            get("The counts per territory."),
                        ),
                        "headers": _CACHE_HEADERS,
                    },
                    "404": {"description": get("No public campaign has this short name.")},
                },
            },
        },
        "/campaigns/{slug}/open-data.csv": {
            "parameters": [_slug_parameter()],
            "get": {
                "operationId": "open_data_csv",
                "summary": get("Open data: counts per territory (CSV)"),
                "responses": {
                    "200": {
                        "description": get("The same rows as open-data.json, one per territory."),
                        "content": {
                            "text/csv": {
                                "schema": {"type": "string"},
                                "example": "code,name,level,pledges,suppressed,target,status\n"
                                "64,Pyrénées-Atlantiques,department,65,false,120,collecting\n",
                            }
                        },
                        "headers": _CACHE_HEADERS,
                    },
                    "404": {"description": get("No public campaign has this short name.")},
                },
            },
        },
        "/campaigns/{slug}/ledger.json": {
            "parameters": [
                _slug_parameter(),
                {
                    "name": "after",
                    "in": "query",
                    "required": False,
                    "description": get("Return the entries after this sequence number (0: from the start)."),
                    "schema": {"type": "integer", "minimum": 0, "default": 0},
                },
            ],
            "get": {
                "operationId": "ledger_export",
                "summary": get("The public ledger, page by page"),
                "responses": {
                    "200": {
                        "description": get("A page of entries; `next` links to the following page."),
                        "content": {"application/json": {"schema": _ref("LedgerPage")}},
                    },
                    "400": _json(
                        "Error", {"error": "after must be a sequence number (0 or more)"}, get("Bad `after`.")
                    ),
                    "404": _not_found(),
                },
            },
        },
        "/api/v1/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": get("This description (OpenAPI 3.1)"),
                "responses": {
                    "200": {
                        "description": get("The description."),
                        "content": {
                            "application/json": {
                                "schema": {"type": "object", "required": ["openapi", "paths"]}
                            }
                        },
                    }
                },
            }
        },
    }


def openapi_spec() -> dict:
    """The OpenAPI 3.1 description of the public API, in the active language."""
    site_url = settings.SITE_URL
    return {
        "openapi": OPENAPI_VERSION,
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": gettext("deconv public API"),
            "version": API_VERSION,
            "description": gettext(
                "Read only, anonymous, without a key. Counts only: no personal data. Counts between 1 and "
                "%(below)s are hidden (null) so that no one can be recognised."
            )
            % {"below": SMALL_COUNT_THRESHOLD - 1},
        },
        "servers": [{"url": site_url}],
        "paths": _paths(site_url),
        "components": {"schemas": _schemas()},
    }


def openapi_notes() -> list[str]:
    """Caching and CORS, for the /api/ page."""
    return [
        gettext(
            "Caching: answers are rebuilt at most once per counting interval (5 seconds by default) and "
            "carry Cache-Control: public, max-age=<interval>, stale-while-revalidate=<three intervals>. Poll "
            "count.json no more often than max-age; a browser or proxy may serve a slightly older answer "
            "while it fetches the next one."
        ),
        gettext(
            "CORS: every GET is open to every origin (Access-Control-Allow-Origin: *) without credentials; "
            "OPTIONS answers the preflight. Other methods get 405 with a JSON error."
        ),
        gettext(
            'Errors are JSON objects with one field, error, for example {"error": "campaign not found"}.'
        ),
    ]
