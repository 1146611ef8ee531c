from territories.enums import PopulationKind
from territories.models import Department, ReferencePopulation
from territories.selectors import caisses_for_department, departments_by_region, reference_population_latest


def test_reference_population_latest_takes_each_departments_latest_year_in_one_query(
    territories, django_assert_num_queries
):
    nord = Department.objects.get(code="59")
    ReferencePopulation.objects.create(
        department=nord, kind=PopulationKind.LIBERAL_GPS, year=2023, count=2200, source="test"
    )
    ReferencePopulation.objects.create(
        department=nord, kind=PopulationKind.LIBERAL_PHYSICIANS, year=2016, count=4000, source="test"
    )

    with django_assert_num_queries(1):
        gps = reference_population_latest(kind=PopulationKind.LIBERAL_GPS)

    assert len(gps) == 101
    assert gps["59"] == 2200
    assert gps["64"] == 650
    assert sum(reference_population_latest(kind=PopulationKind.LIBERAL_PHYSICIANS).values()) == 113_455


def test_reference_population_latest_is_empty_without_figures(db):
    assert reference_population_latest(kind=PopulationKind.LIBERAL_GPS) == {}


def test_departments_by_region_groups_in_official_order_in_one_query(territories, django_assert_num_queries):
    with django_assert_num_queries(1):
        grouped = departments_by_region()

    assert len(grouped) == 18
    assert sum(len(departments) for departments in grouped.values()) == 101
    corse = next(region for region in grouped if region.code == "94")
    assert [d.code for d in grouped[corse]] == ["2A", "2B"]
    hauts_de_france = next(region for region in grouped if region.code == "32")
    assert [d.code for d in grouped[hauts_de_france]] == ["02", "59", "60", "62", "80"]


def test_caisses_for_department_lists_the_choice_in_nord(territories):
    assert [c.code for c in caisses_for_department(department_code="59")] == [
        "cpam-59-lille-douai",
        "cpam-59-roubaix-tourcoing",
        "cpam-59-flandres",
        "cpam-59-hainaut",
    ]
    assert [c.name for c in caisses_for_department(department_code="976")] == [
        "Caisse de sécurité sociale de Mayotte (CSSM)"
    ]
