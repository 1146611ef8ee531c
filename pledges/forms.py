"""The pledge form: what a verified physician types to sign, or to correct their pledge.

Forms validate and never write nor send mail; pledges.services enforces the same rules again.
"""

import re
import unicodedata

from django import forms
from django.utils.text import capfirst, format_lazy
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from deconv.forms import HoneypotMixin
from pledges.enums import ConventionSector, PracticeMode, Specialty
from pledges.letter_fonts import characters_letters_cannot_print
from pledges.models import Campaign, LetterVersion, Pledge
from pledges.rpps import RPPS_LENGTH, rpps_is_valid, rpps_normalize
from territories.cache import ReferenceData, reference_data
from territories.models import Caisse, Department
from territories.postal import departments_for_postal_code, postal_code_matches_department

NAME_MAX_LENGTH = 100
ADDRESS_MAX_LENGTH = 200
CITY_MAX_LENGTH = 100
PATIENT_LIST_MAX = 10_000
_WHITESPACE = re.compile(r"\s+")


def text_normalize(value: str) -> str:
    """Strip and collapse runs of spaces (including tabs and no-break spaces) into one space."""
    return _WHITESPACE.sub(" ", value).strip()


def text_has_control_characters(value: str) -> bool:
    """Control, format (bidi overrides, zero-width) and unassigned characters have no place in a letter."""
    return any(unicodedata.category(char).startswith("C") for char in value)


def _clean_text(value: str, *, field_label, require_letter: bool) -> str:
    value = text_normalize(value)
    if text_has_control_characters(value):
        raise forms.ValidationError(
            _("%(field)s contains invisible or control characters: please type it again."),
            code="control_characters",
            params={"field": field_label},
        )
    unprintable = characters_letters_cannot_print(value)
    if unprintable:
        raise forms.ValidationError(
            _(
                "%(field)s contains characters your letter cannot print (%(characters)s): please "
                "write them in Latin letters, as on your professional documents."
            ),
            code="unprintable_characters",
            params={"field": field_label, "characters": " ".join(unprintable)},
        )
    if require_letter and not any(char.isalpha() for char in value):
        raise forms.ValidationError(
            _("%(field)s must contain at least one letter."), code="no_letter", params={"field": field_label}
        )
    if not require_letter and not any(char.isalnum() for char in value):
        raise forms.ValidationError(
            _("%(field)s must contain letters or digits."), code="no_letter", params={"field": field_label}
        )
    return value


class _DepartmentChoiceIterator(forms.models.ModelChoiceIterator):
    def __iter__(self):
        reference = self.field.reference_in_use()
        if reference is None:
            yield from super().__iter__()
            return
        if self.field.empty_label is not None:
            yield ("", self.field.empty_label)
        for department in reference.departments:
            yield self.choice(department)

    def __len__(self):
        reference = self.field.reference_in_use()
        if reference is None:
            return super().__len__()
        return len(reference.departments) + (1 if self.field.empty_label is not None else 0)


class DepartmentField(forms.ModelChoiceField):
    """A department by its code, answered from the process's copy (territories.cache) once the form
    gave it one, without a query; from the database again once its queryset is narrowed (an
    organizer's scope: moderation.PaperPledgeForm)."""

    iterator = _DepartmentChoiceIterator

    def __init__(self, **kwargs):
        super().__init__(queryset=Department.objects.order_by("position"), to_field_name="code", **kwargs)
        self.reference: ReferenceData | None = None
        self._reference_queryset = None

    def use_reference(self, reference: ReferenceData) -> None:
        self.reference = reference
        self._reference_queryset = self.queryset

    def reference_in_use(self) -> ReferenceData | None:
        # `queryset` is replaced, not changed, when a form narrows it.
        if self.reference is not None and self.queryset is self._reference_queryset:
            return self.reference
        return None

    def to_python(self, value):
        reference = self.reference_in_use()
        if reference is None:
            return super().to_python(value)
        if value in self.empty_values:
            return None
        if isinstance(value, Department):
            value = value.code
        department = reference.department_by_code.get(str(value))
        if department is None:
            raise forms.ValidationError(
                self.error_messages["invalid_choice"], code="invalid_choice", params={"value": value}
            )
        return department


class PledgeForm(HoneypotMixin, forms.Form):
    """Sign (`pledge=None`) or correct a pledge (`pledge` given: no RPPS, no consents)."""

    rpps = forms.CharField(
        # The model's msgid, whose translation is lower case (a verbose_name).
        label=capfirst(_("RPPS number")),
        # Room for the spaces, dots and dashes people copy from a card; normalised below.
        max_length=30,
        help_text=_("11 digits, as on your CPS card or in the RPPS directory. Spaces and dots are accepted."),
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "off"}),
    )
    last_name = forms.CharField(
        label=_("Last name"),
        max_length=NAME_MAX_LENGTH,
        widget=forms.TextInput(attrs={"autocomplete": "family-name"}),
    )
    first_name = forms.CharField(
        label=_("First name"),
        max_length=NAME_MAX_LENGTH,
        widget=forms.TextInput(attrs={"autocomplete": "given-name"}),
    )
    specialty = forms.ChoiceField(label=_("Specialty"))
    practice_mode = forms.ChoiceField(label=_("Mode of practice"), widget=forms.RadioSelect)
    sector = forms.ChoiceField(label=_("Convention sector"), choices=ConventionSector.choices)
    department = DepartmentField(
        label=_("Department of practice"),
        empty_label=_("Choose your department"),
        error_messages={"invalid_choice": _("Choose your department from the list.")},
    )
    practice_address = forms.CharField(
        label=_("Practice address"),
        max_length=ADDRESS_MAX_LENGTH,
        help_text=_("Number and street of your main place of practice."),
        widget=forms.TextInput(attrs={"autocomplete": "address-line1"}),
    )
    postal_code = forms.CharField(
        label=_("Postal code"),
        max_length=10,
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "postal-code"}),
    )
    city = forms.CharField(
        label=_("City"),
        max_length=CITY_MAX_LENGTH,
        widget=forms.TextInput(attrs={"autocomplete": "address-level2"}),
    )
    caisse = forms.CharField(
        label=_("Your caisse"),
        required=False,
        help_text=_(
            "Only in departments with several caisses (Nord, Pas-de-Calais, Pyrénées-Atlantiques, "
            "Seine-Maritime): choose the one where you practise. Elsewhere it is chosen for you."
        ),
        widget=forms.Select,
    )
    patient_list_size = forms.IntegerField(
        label=_("Patients who chose you as their médecin traitant (optional)"),
        required=False,
        min_value=0,
        max_value=PATIENT_LIST_MAX,
        help_text=_("An approximate number is enough. It helps show what is at stake in your department."),
    )
    consent_pledge = forms.BooleanField(
        required=True,
        error_messages={"required": _("Tick this box to sign: your pledge needs your explicit consent.")},
    )
    consent_data = forms.BooleanField(
        required=True,
        error_messages={
            "required": _("Tick this box to sign: we can only keep your pledge with your explicit consent.")
        },
        label=_(
            "I explicitly consent to the processing of the data above to manage my conditional pledge. "
            "I understand that it may reveal a political opinion or closeness to a union (sensitive data, "
            "article 9 of the GDPR); that I can withdraw my consent at any time, as easily as I gave it, "
            "from “My pledge”; and that my data is kept until the end of the campaign, then deleted."
        ),
    )

    def __init__(
        self,
        *args,
        campaign: Campaign,
        letter_version: LetterVersion | None = None,
        pledge: Pledge | None = None,
        **kwargs,
    ):
        if pledge is not None and "initial" not in kwargs:
            kwargs["initial"] = pledge_initial(pledge=pledge)
        super().__init__(*args, **kwargs)
        self.campaign = campaign
        self.pledge = pledge
        # Departments and caisses from the process's copy: one light query instead of loading them.
        self._reference = reference_data()
        self.fields["department"].use_reference(self._reference)
        if pledge is not None:
            # Correcting a pledge: the RPPS is the physician's identity (withdraw and sign again to
            # change it), and consent was given at signing.
            for name in ("rpps", "consent_pledge", "consent_data"):
                del self.fields[name]
        else:
            number = letter_version.number if letter_version else "?"
            self.fields["consent_pledge"].label = format_lazy(
                _(
                    "I sign version {number} of this letter as a conditional pledge. It is held in escrow and "
                    "will only be sent to my caisse if my department reaches its threshold and I confirm again."
                ),
                number=number,
            )
        self._restrict_specialties()
        self._restrict_practice_modes()
        self.fields["sector"].choices = [("", _("Choose your sector")), *ConventionSector.choices]
        self.fields["caisse"].widget.choices = self._caisse_choices()

    def _restrict_specialties(self) -> None:
        allowed = self.campaign.eligible_specialties or Specialty.values
        choices = [(value, label) for value, label in Specialty.choices if value in allowed]
        field = self.fields["specialty"]
        field.choices = [("", _("Choose your specialty")), *choices]
        if self.campaign.eligible_specialties:
            field.error_messages["invalid_choice"] = gettext(
                "This campaign is only open to these specialties: %(allowed)s."
            ) % {"allowed": ", ".join(str(label) for _value, label in choices)}

    def _restrict_practice_modes(self) -> None:
        allowed = self.campaign.eligible_practice_modes or PracticeMode.values
        choices = [(value, label) for value, label in PracticeMode.choices if value in allowed]
        field = self.fields["practice_mode"]
        field.choices = choices
        field.error_messages["invalid_choice"] = gettext(
            "This campaign is only open to these modes of practice: %(allowed)s."
        ) % {"allowed": ", ".join(str(label).lower() for _value, label in choices)}

    def _caisse_choices(self) -> list:
        """Only departments with several caisses offer a choice, grouped by department."""
        choices: list = [("", _("Only if your department has several caisses"))]
        for department in self._reference.departments:
            caisses = self._reference.caisses_of(department)
            if len(caisses) > 1:
                choices.append((str(department), [(caisse.code, caisse.name) for caisse in caisses]))
        return choices

    def clean_rpps(self) -> str:
        raw = self.cleaned_data["rpps"]
        number = rpps_normalize(raw)
        if not number.isascii() or not number.isdigit():
            raise forms.ValidationError(
                _("An RPPS number contains only digits (spaces, dots and dashes are ignored)."),
                code="rpps_digits",
            )
        if len(number) != RPPS_LENGTH:
            raise forms.ValidationError(
                _("An RPPS number has 11 digits; this one has %(count)s."),
                code="rpps_length",
                params={"count": len(number)},
            )
        if not rpps_is_valid(number):
            raise forms.ValidationError(
                _("This RPPS number is not valid: its last digit does not match. Check for a typing error."),
                code="rpps_checksum",
            )
        return number

    def clean_last_name(self) -> str:
        return _clean_text(self.cleaned_data["last_name"], field_label=_("Last name"), require_letter=True)

    def clean_first_name(self) -> str:
        return _clean_text(self.cleaned_data["first_name"], field_label=_("First name"), require_letter=True)

    def clean_practice_address(self) -> str:
        return _clean_text(
            self.cleaned_data["practice_address"], field_label=_("Practice address"), require_letter=False
        )

    def clean_city(self) -> str:
        return _clean_text(self.cleaned_data["city"], field_label=_("City"), require_letter=True)

    def clean_postal_code(self) -> str:
        code = "".join(self.cleaned_data["postal_code"].split())
        if not re.fullmatch(r"[0-9]{5}", code):
            raise forms.ValidationError(
                _("A postal code has 5 digits, for example 59000."), code="postal_code_format"
            )
        if not departments_for_postal_code(code):
            raise forms.ValidationError(
                _("The postal code %(code)s does not belong to a French department."),
                code="postal_code_unknown",
                params={"code": code},
            )
        return code

    def clean_sector(self) -> str:
        sector = self.cleaned_data["sector"]
        if sector == ConventionSector.NON_CONVENTIONED:
            raise forms.ValidationError(
                _(
                    "You already practise outside the convention: this letter, which leaves it, does not apply to you."
                ),
                code="already_sector_3",
            )
        return sector

    def clean(self) -> dict:
        cleaned = super().clean()
        department = cleaned.get("department")
        if department is None:
            return cleaned
        postal_code = cleaned.get("postal_code")
        if postal_code and not postal_code_matches_department(postal_code, department.code):
            self.add_error(
                "postal_code",
                forms.ValidationError(
                    _(
                        "The postal code %(code)s is not in %(department)s. Check the postal code or the "
                        "department of practice."
                    ),
                    code="postal_code_department",
                    params={"code": postal_code, "department": str(department)},
                ),
            )
        cleaned["caisse"] = self._clean_caisse_for(department, cleaned.get("caisse") or "")
        return cleaned

    def _clean_caisse_for(self, department: Department, code: str) -> Caisse | None:
        caisses = self._reference.caisses_of(department)
        chosen = next((caisse for caisse in caisses if caisse.code == code), None)
        if code and chosen is None:
            other = self._reference.caisse_by_code.get(code)
            if other is None:
                self.add_error(
                    "caisse",
                    forms.ValidationError(_("Choose a caisse from the list."), code="caisse_unknown"),
                )
            else:
                self.add_error(
                    "caisse",
                    forms.ValidationError(
                        _("%(caisse)s is not a caisse of %(department)s. Choose one of: %(choices)s."),
                        code="caisse_department",
                        params={
                            "caisse": other.name,
                            "department": str(department),
                            "choices": ", ".join(caisse.name for caisse in caisses) or "—",
                        },
                    ),
                )
            return None
        if chosen is not None:
            return chosen
        if len(caisses) > 1:
            self.add_error(
                "caisse",
                forms.ValidationError(
                    _("%(department)s has several caisses: choose the one where you practise (%(choices)s)."),
                    code="caisse_required",
                    params={
                        "department": str(department),
                        "choices": ", ".join(caisse.name for caisse in caisses),
                    },
                ),
            )
            return None
        # One caisse: it is the addressee. None: the reference data lacks it; the letter says so.
        return caisses[0] if caisses else None

    def pledge_data(self) -> dict:
        """The cleaned values the services take, without the consent boxes."""
        return {
            name: value
            for name, value in self.cleaned_data.items()
            if name in PLEDGE_DATA_FIELDS and name in self.fields
        }


# The fields of a pledge the form fills; pledges.services reads the same names.
PLEDGE_DATA_FIELDS = (
    "rpps",
    "last_name",
    "first_name",
    "specialty",
    "practice_mode",
    "sector",
    "department",
    "practice_address",
    "postal_code",
    "city",
    "caisse",
    "patient_list_size",
)


def pledge_initial(*, pledge: Pledge) -> dict:
    """A pledge's values as the form's initial data (department and caisse by code)."""
    initial = {
        name: getattr(pledge, name) for name in PLEDGE_DATA_FIELDS if name not in ("department", "caisse")
    }
    initial["department"] = pledge.department.code if pledge.department_id else None
    initial["caisse"] = pledge.caisse.code if pledge.caisse_id else ""
    return initial


class AccountDeleteForm(forms.Form):
    """One box to tick: deleting an account cannot be undone, so it is never a single click."""

    confirm = forms.BooleanField(
        required=True,
        label=_(
            "I understand that my account, my RPPS number and the personal details of my pledges will be "
            "deleted for good, and that my pledges still in progress will be withdrawn."
        ),
        error_messages={"required": _("Tick the box to confirm that you want to delete your account.")},
    )
