"""Render a template to PDF with WeasyPrint, offline.

Only files found by the static-files finders (static/ and apps' static folders) are served to
WeasyPrint; every other URL (network, file://, data:) is refused, so a letter can never make
the server fetch something chosen by a signer.
"""

import copy
import logging
import mimetypes
from pathlib import Path
from urllib.parse import unquote, urlsplit

from django.contrib.staticfiles import finders
from django.template.loader import render_to_string

# WeasyPrint logs every layout step at INFO: eight lines per letter, 80,000 for a large release.
logging.getLogger("weasyprint.progress").setLevel(logging.WARNING)

# A host that resolves nowhere (.invalid is reserved). Templates link their stylesheet as
# {{ PDF_STATIC_URL }}letters/letter.css; the fetcher maps these URLs back to files on disk.
# Not {% static %}: in production that names hashed files that exist only after collectstatic.
PDF_BASE_URL = "https://deconv-pdf.invalid/"
PDF_STATIC_URL = f"{PDF_BASE_URL}static/"


class StaticFilesOnlyFetcherError(ValueError):
    """WeasyPrint asked for a resource that is not one of our static files."""


def static_path_for_url(url: str) -> Path | None:
    """The file on disk a PDF resource URL names, or None when it is not an allowed static file."""
    parts = urlsplit(url)
    if parts.scheme != "https" or parts.netloc != urlsplit(PDF_BASE_URL).netloc:
        return None
    static_prefix = urlsplit(PDF_STATIC_URL).path
    path = unquote(parts.path)
    if not path.startswith(static_prefix):
        return None
    relative = path[len(static_prefix) :]
    if not relative or ".." in Path(relative).parts:
        return None
    # The finders join safely under each static folder (no escaping with "..").
    found = finders.find(relative)
    if not found:
        return None
    return Path(found)


def _fetcher_class():
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    class StaticFilesOnlyFetcher(URLFetcher):
        def fetch(self, url, headers=None):
            path = static_path_for_url(url)
            if path is None:
                raise StaticFilesOnlyFetcherError(f"refused: {url[:200]}")
            content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            return URLFetcherResponse(url, body=path.read_bytes(), headers={"Content-Type": content_type})

    return StaticFilesOnlyFetcher


# Options for every PDF we write. Tagged PDF/UA-1: the structure tree lets screen readers read
# a letter, and costs little next to the layout (bench/letters.py measures both ways).
PDF_OPTIONS = {"pdf_variant": "pdf/ua-1"}
# A PDF only read back by another program (deconv.pdf_stamp): its structure tree, without the
# metadata PDF/UA adds for readers.
PDF_TAGGED_ONLY = {"pdf_tags": True}


def html_layout(*, html: str):
    """Lay out `html` once, offline: a weasyprint Document whose pages can be written together or apart."""
    # Imported here: WeasyPrint loads Pango and fonts, which costs every process that never prints.
    from weasyprint import HTML

    fetcher = _fetcher_class()()
    return HTML(string=html, base_url=PDF_BASE_URL, url_fetcher=fetcher).render(**PDF_OPTIONS)


def document_write_pdf(
    *, document, pages=None, title: str | None = None, options: dict = PDF_OPTIONS
) -> bytes:
    """The PDF of `pages` of a laid-out document (all of them when None), titled `title` if given."""
    part = document if pages is None else document.copy(pages)
    if title is not None:
        # copy() shares the metadata object: give each part its own before changing the title.
        part.metadata = copy.copy(part.metadata)
        part.metadata.title = title
    return part.write_pdf(**options)


def render_to_pdf(*, template_name: str, context: dict) -> tuple[str, bytes]:
    """Render `template_name` with `context`; return the HTML and the PDF made from it."""
    html = render_to_string(template_name, {"PDF_STATIC_URL": PDF_STATIC_URL, **context})
    return html, document_write_pdf(document=html_layout(html=html))
