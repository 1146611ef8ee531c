"""Helpers shared by the released-letters tests."""

import io

from pypdf import PdfReader

from pledges.letters_pipeline import letter_path


def pdf_reader(data: bytes) -> PdfReader:
    return PdfReader(io.BytesIO(data))


def pdf_text(data: bytes) -> str:
    """All the text of a PDF, as pypdf extracts it (what a reader copies from the letter)."""
    return "\n".join(page.extract_text() for page in pdf_reader(data).pages)


def letter_bytes(letter) -> bytes:
    return letter_path(file_name=letter.file_name).read_bytes()


def letter_text(letter) -> str:
    return pdf_text(letter_bytes(letter))


def one_line(text: str) -> str:
    """The text with every run of whitespace as one space: line breaks fall anywhere in a PDF."""
    return " ".join(text.split())
