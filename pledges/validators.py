from django.core.exceptions import ValidationError
from django.db import models
from django.utils.deconstruct import deconstructible
from django.utils.translation import gettext_lazy as _


@deconstructible
class ChoiceListValidator:
    """A JSON list of distinct values taken from `choices` (a TextChoices class)."""

    def __init__(self, choices: type[models.TextChoices]):
        self.choices = choices

    def __call__(self, value) -> None:
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ValidationError(_("Expected a list of values."), code="not_a_list")
        unknown = sorted(set(value) - set(self.choices.values))
        if unknown:
            raise ValidationError(
                _("Unknown values: %(values)s."), code="unknown_values", params={"values": ", ".join(unknown)}
            )
        if len(set(value)) != len(value):
            raise ValidationError(_("Each value may appear only once."), code="duplicate_values")

    def __eq__(self, other) -> bool:
        return isinstance(other, ChoiceListValidator) and self.choices is other.choices
