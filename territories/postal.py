"""Which department a French postal code belongs to.

A postal code is not a department code: Corsica is 20xxx for both 2A and 2B, overseas
departments are 971xx-976xx, and a few 97xxx codes belong to collectivities that are not
departments. The first digits name the distributing post office's department, which is the
commune's department in almost every case; callers should treat a mismatch as a question to
ask, not as proof of fraud.
"""

import re

_FIVE_DIGITS = re.compile(r"[0-9]{5}")
# People type "59 000" and paste no-break spaces; \s matches those too.
_SPACES = re.compile(r"\s+")

# Saint-Barthélemy (97133) and Saint-Martin (97150) left Guadeloupe in 2007: they are
# collectivities with no department, though their codes sit in Guadeloupe's 971 range.
_NOT_A_DEPARTMENT = frozenset({"97133", "97150"})
_OVERSEAS = frozenset({"971", "972", "973", "974", "976"})

# La Poste numbers Corse-du-Sud 200xx-201xx (Ajaccio's sorting office) and Haute-Corse
# 202xx and 206xx (Bastia's). Any other 20xxx is ambiguous, so both are returned.
_CORSICA = {"200": "2A", "201": "2A", "202": "2B", "206": "2B"}


def departments_for_postal_code(postal_code: str) -> set[str]:
    """The department codes a postal code can belong to; empty when it names none."""
    if not isinstance(postal_code, str):
        return set()
    code = _SPACES.sub("", postal_code)
    if not _FIVE_DIGITS.fullmatch(code):
        return set()
    if code[:2] == "97":
        if code in _NOT_A_DEPARTMENT or code[:3] not in _OVERSEAS:
            return set()
        return {code[:3]}
    if code[:2] == "20":
        corsica = _CORSICA.get(code[:3])
        return {corsica} if corsica else {"2A", "2B"}
    if "01" <= code[:2] <= "95":
        return {code[:2]}
    return set()


def postal_code_matches_department(postal_code: str, department_code: str) -> bool:
    """Whether a physician's postal code is consistent with the department they chose."""
    if not isinstance(department_code, str):
        return False
    return department_code.strip().upper() in departments_for_postal_code(postal_code)
