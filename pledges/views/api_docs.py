"""The public API's description: OpenAPI 3.1 JSON for machines, an HTML page for people."""

import json

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import translation
from django.views.decorators.http import require_safe

from pledges.openapi import openapi_notes, openapi_spec
from pledges.views.api import public_api

_LANGUAGES = {code for code, _name in settings.LANGUAGES}
# The description changes with a deployment, not with the counts.
OPENAPI_MAX_AGE = 3600


@public_api
def openapi_json(request: HttpRequest) -> HttpResponse:
    """In French unless `?lang=` names another language: the URL, not a cookie, picks it, so that
    shared caches keep one copy per language."""
    language = request.GET.get("lang", "")
    if language not in _LANGUAGES:
        language = settings.LANGUAGE_CODE
    with translation.override(language):
        spec = openapi_spec()
    response = HttpResponse(
        json.dumps(spec, ensure_ascii=False, indent=1).encode(), content_type="application/json"
    )
    response["Cache-Control"] = f"public, max-age={OPENAPI_MAX_AGE}"
    return response


def _type_text(schema: dict) -> str:
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " | ".join(_type_text(option) for option in schema["anyOf"])
    kind = schema.get("type", "")
    text = " | ".join(kind) if isinstance(kind, list) else kind
    if kind == "array" or (isinstance(kind, list) and "array" in kind):
        text += f" [{_type_text(schema.get('items', {}))}]"
    return text


def _fields(spec: dict, reference: str, seen: set[str] | None = None) -> list[dict]:
    """A component's fields, then those of the components it refers to, each once."""
    seen = set() if seen is None else seen
    name = reference.rsplit("/", 1)[-1]
    schema = spec["components"]["schemas"].get(name)
    if schema is None or name in seen or "properties" not in schema:
        return []
    seen.add(name)
    fields = [
        {
            "schema": name,
            "name": field_name,
            "type": _type_text(field),
            "required": field_name in schema.get("required", []),
            "description": field.get("description", ""),
        }
        for field_name, field in schema["properties"].items()
    ]
    nested = [
        option["$ref"]
        for field in schema["properties"].values()
        for option in (field, field.get("items", {}), *field.get("anyOf", []))
        if "$ref" in option
    ]
    for child in nested:
        fields += _fields(spec, child, seen)
    return fields


def _operations(spec: dict) -> list[dict]:
    """Each path's GET with its parameters and responses, examples pretty-printed for the page."""
    operations = []
    for path, item in spec["paths"].items():
        operation = item["get"]
        responses = []
        for status, response in operation["responses"].items():
            content_type, media = next(iter(response.get("content", {}).items()), (None, {}))
            example = media.get("example")
            if example is not None and not isinstance(example, str):
                example = json.dumps(example, ensure_ascii=False, indent=2)
            reference = media.get("schema", {}).get("$ref")
            responses.append(
                {
                    "status": status,
                    "description": response["description"],
                    "content_type": content_type,
                    "example": example,
                    "fields": _fields(spec, reference) if reference and status.startswith("2") else [],
                }
            )
        operations.append(
            {
                "path": path,
                "summary": operation.get("summary", ""),
                "description": operation.get("description", ""),
                "parameters": [*item.get("parameters", []), *operation.get("parameters", [])],
                "responses": responses,
            }
        )
    return operations


@require_safe
def api_docs(request: HttpRequest) -> HttpResponse:
    spec = openapi_spec()
    return render(
        request,
        "pledges/api_docs.html",
        {"spec": spec, "operations": _operations(spec), "notes": openapi_notes()},
    )
