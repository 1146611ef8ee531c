import pytest

from territories.postal import departments_for_postal_code, postal_code_matches_department


@pytest.mark.parametrize(
    ("postal_code", "departments"),
    [
        ("59000", {"59"}),
        ("01000", {"01"}),
        ("75015", {"75"}),
        ("95000", {"95"}),
        (" 59 000 ", {"59"}),
        ("59\u00a0000", {"59"}),
        ("20000", {"2A"}),  # Ajaccio
        ("20137", {"2A"}),  # Porto-Vecchio
        ("20200", {"2B"}),  # Bastia
        ("20600", {"2B"}),  # Bastia, Furiani
        ("20300", {"2A", "2B"}),  # not assigned: either
        ("97100", {"971"}),
        ("97200", {"972"}),
        ("97300", {"973"}),
        ("97400", {"974"}),
        ("97600", {"976"}),
        ("97133", set()),  # Saint-Barthélemy
        ("97150", set()),  # Saint-Martin
        ("97500", set()),  # Saint-Pierre-et-Miquelon
        ("97700", set()),
        ("98000", set()),  # Monaco
        ("96000", set()),
        ("00100", set()),
    ],
)
def test_departments_for_postal_code(postal_code, departments):
    assert departments_for_postal_code(postal_code) == departments


@pytest.mark.parametrize("bad", ["", "5900", "590000", "59OOO", "2A000", "٥٩٠٠٠", "59-000", None, 59000])
def test_bad_postal_codes_name_no_department(bad):
    assert departments_for_postal_code(bad) == set()


@pytest.mark.parametrize(
    ("postal_code", "department", "matches"),
    [
        ("59000", "59", True),
        ("59000", "62", False),
        ("20000", "2A", True),
        ("20000", "2a", True),
        ("20000", "2B", False),
        ("20300", "2B", True),
        ("97133", "971", False),
        ("97110", "971", True),
        ("abcde", "59", False),
        ("59000", None, False),
    ],
)
def test_postal_code_matches_department(postal_code, department, matches):
    assert postal_code_matches_department(postal_code, department) is matches
