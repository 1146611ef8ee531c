import pytest
from django.contrib.auth import get_user_model

from territories.models import Caisse, Department


@pytest.fixture
def admin_client_fr(client, territories):
    user = get_user_model().objects.create_superuser(email="organizer@example.org", password="x")
    client.force_login(user)
    client.cookies["django_language"] = "fr"
    return client


def test_caisse_changelist_filters_by_kind_with_french_labels(admin_client_fr):
    response = admin_client_fr.get("/admin/territories/caisse/", {"kind__exact": "cgss"})

    body = response.content.decode()
    assert response.status_code == 200
    assert "CGSS de la Martinique" in body
    assert "CPAM de Bayonne" not in body
    assert "Adresse vérifiée" in body
    assert "4 caisses" in body


def test_an_organizer_corrects_a_caisse_name_and_address(admin_client_fr):
    bayonne = Caisse.objects.get(code="cpam-64-bayonne")
    url = f"/admin/territories/caisse/{bayonne.pk}/change/"

    response = admin_client_fr.post(
        url,
        {
            "name": "Autre nom",
            "address_line1": "1 rue de test",
            "address_line2": "",
            "postal_code": "64100",
            "city": "Bayonne",
            "address_verified": "on",
            "notes": "Adresse confirmée par téléphone.",
        },
    )

    assert response.status_code == 302
    bayonne.refresh_from_db()
    assert (bayonne.name, bayonne.address_line1, bayonne.city) == ("Autre nom", "1 rue de test", "Bayonne")
    assert bayonne.address_verified is True
    assert bayonne.name_edited_by_organizer is True


def test_saving_a_caisse_without_renaming_it_keeps_the_name_seed_owned(admin_client_fr):
    ain = Caisse.objects.get(department__code="01")
    response = admin_client_fr.post(
        f"/admin/territories/caisse/{ain.pk}/change/",
        {
            "name": ain.name,
            "address_line1": "1 rue X",
            "address_line2": "",
            "postal_code": "01000",
            "city": "Bourg",
        },
    )

    assert response.status_code == 302
    ain.refresh_from_db()
    assert ain.name_edited_by_organizer is False


def test_department_page_lists_its_caisses_and_populations(admin_client_fr):
    nord = Department.objects.get(code="59")

    response = admin_client_fr.get(f"/admin/territories/department/{nord.pk}/change/")

    body = response.content.decode()
    assert response.status_code == 200
    assert "CPAM de Roubaix-Tourcoing" in body
    assert "médecins généralistes libéraux (hors MEP)" in body
    assert "2306" in body or "2 306" in body or "2\u202f306" in body
