"""Structured forms: schemas, validation, and rendering in the reader's language."""

from .render import render
from .schema import FORMS, Field, Form, form_body
from .validate import FormError, UnknownVersion, validate

__all__ = [
    "FORMS",
    "Field",
    "Form",
    "FormError",
    "UnknownVersion",
    "form_body",
    "render",
    "validate",
]
