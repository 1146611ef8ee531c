"""Public pages: the site layout, French first, the language switch, account and error pages."""

import re
from html import unescape
from html.parser import HTMLParser

import pytest
from django.contrib.auth.models import AnonymousUser
from django.template.loader import render_to_string
from django.test import RequestFactory
from django.utils import timezone
from django.views import defaults

from pledges.models import Campaign, LetterVersion

pytestmark = pytest.mark.django_db

SKIP_LINK_FR = '<a class="skip-link" href="#main">Aller au contenu</a>'
SKIP_LINK_EN = '<a class="skip-link" href="#main">Skip to content</a>'


class _Outline(HTMLParser):
    """The facts about a page the tests check: lang, focusable elements in order, <main>s, styles."""

    FOCUSABLE = {"a", "button", "input", "select", "textarea"}

    def __init__(self):
        super().__init__()
        self.lang = None
        self.focusable = []  # (tag, attrs) in document order
        self.mains = []
        self.inline_styles = 0
        self.inline_scripts = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "html":
            self.lang = attrs.get("lang")
        if tag == "main":
            self.mains.append(attrs)
        if "style" in attrs or tag == "style":
            self.inline_styles += 1
        if tag == "script" and "src" not in attrs and attrs.get("type") != "application/json":
            self.inline_scripts += 1
        if tag in self.FOCUSABLE and attrs.get("type") != "hidden" and (tag != "a" or "href" in attrs):
            self.focusable.append((tag, attrs))


def outline(response) -> _Outline:
    parser = _Outline()
    parser.feed(response.content.decode())
    return parser


def text(response) -> str:
    """The page's HTML with entities decoded and whitespace collapsed, for checking sentences."""
    return re.sub(r"[ \t\r\n]+", " ", unescape(response.content.decode()))


def assert_site_layout(response, *, lang: str):
    page = outline(response)
    assert page.lang == lang
    # The skip link is the first thing a keyboard reaches, and it targets the one <main id="main">.
    first_tag, first_attrs = page.focusable[0]
    assert (first_tag, first_attrs.get("href"), first_attrs.get("class")) == ("a", "#main", "skip-link")
    assert len(page.mains) == 1
    assert page.mains[0]["id"] == "main"
    # CSP allows no inline script or style: the markup must not need any.
    assert page.inline_styles == 0
    assert page.inline_scripts == 0
    assert '<link rel="stylesheet" href="/static/css/site.css">' in response.content.decode()
    return page


def language_buttons(page: _Outline) -> dict[str, bool]:
    """{language code: marked current} for the buttons of the language switch."""
    return {
        attrs["value"]: attrs.get("aria-current") == "true"
        for tag, attrs in page.focusable
        if tag == "button" and attrs.get("name") == "language"
    }


def open_campaign(**fields) -> Campaign:
    defaults_ = {
        "slug": "gironde-2025",
        "title": "Déconventionnement Gironde 2025",
        "description": "Les médecins libéraux de Gironde s'engagent ensemble.",
        "status": "open",
        "opens_at": timezone.now() - timezone.timedelta(days=1),
    }
    return Campaign.objects.create(**{**defaults_, **fields})


# ---- Home page and layout ----------------------------------------------------------------------


def test_home_is_in_french_by_default_with_the_site_layout(client):
    response = client.get("/")

    assert response.status_code == 200
    assert response["Content-Language"] == "fr"
    page = assert_site_layout(response, lang="fr")
    content = response.content.decode()
    assert SKIP_LINK_FR in content
    assert language_buttons(page) == {"fr": True, "en": False}
    assert '<form class="lang-switch" action="/i18n/setlang/" method="post">' in content
    assert '<input type="hidden" name="next" value="/">' in content
    body = text(response)
    assert "Se déconventionner ensemble, ou pas du tout" in body
    assert '<a href="/" aria-current="page">Campagnes</a>' in body
    assert '<a href="/accounts/login/">Se connecter</a>' in body
    assert "Données personnelles" in body


def test_home_without_campaigns_shows_the_empty_state(client):
    Campaign.objects.create(slug="brouillon", title="Campagne en préparation", status="draft")

    body = text(client.get("/"))

    assert "Aucune campagne n'est ouverte aux signatures pour le moment." in body
    assert "Campagne en préparation" not in body


def test_home_lists_an_open_campaign_as_a_card(client):
    open_campaign()

    response = client.get("/")

    body = text(response)
    assert '<a href="/campaigns/gironde-2025/">Déconventionnement Gironde 2025</a>' in body
    assert "Les médecins libéraux de Gironde s'engagent ensemble." in body
    assert "Voir la campagne et signer" in body
    assert "Aucune campagne n'est ouverte" not in body


def test_authenticated_nav_has_account_link_and_a_logout_form(client, django_user_model):
    user = django_user_model.objects.create_user(email="medecin@example.org", password="x-Secret-123")
    client.force_login(user)

    content = client.get("/").content.decode()

    assert '<a href="/accounts/email/">Mon compte</a>' in content
    logout = re.search(
        r'<form class="site-nav__logout" action="/accounts/logout/" method="post">(.*?)</form>', content, re.S
    )
    assert logout is not None
    assert 'name="csrfmiddlewaretoken"' in logout.group(1)
    assert "Se déconnecter" in logout.group(1)
    assert "Se connecter" not in content


def test_switching_to_english_renders_the_site_in_english(client):
    response = client.post("/i18n/setlang/", {"language": "en", "next": "/"})

    assert response.status_code == 302
    assert response["Location"] == "/"
    response = client.get("/")
    page = assert_site_layout(response, lang="en")
    assert language_buttons(page) == {"fr": False, "en": True}
    body = text(response)
    assert SKIP_LINK_EN in body
    assert "Leave the convention together, or not at all" in body
    assert "Campaigns" in body
    assert "Aller au contenu" not in body
    assert "Campagnes" not in body


# ---- Campaign page ---------------------------------------------------------------------------


def test_campaign_page_explains_the_pledge_and_shows_the_letter(client):
    campaign = open_campaign()
    LetterVersion.objects.create(
        campaign=campaign,
        number=1,
        title="Lettre de déconventionnement",
        body="Madame, Monsieur,\n\nJe soussigné(e) Dr {last_name}, RPPS {rpps}.",
    )

    response = client.get("/campaigns/gironde-2025/")

    assert response.status_code == 200
    assert_site_layout(response, lang="fr")
    body = text(response)
    assert "<h1>Déconventionnement Gironde 2025</h1>" in body
    assert 'href="/campaigns/gironde-2025/sign/">Je signe la lettre d\'intention</a>' in body
    # Conditional, escrowed, and the consequences of DOMAIN.md section 2.
    assert "Rien ne se passe tant que suffisamment de médecins libéraux de votre département" in body
    assert "Aucune lettre n'est envoyée sans l'accord de son auteur" in body
    assert "<em>tarif d'autorité</em>\u00a0: environ 0,61\u00a0€" in body
    assert "<em>tact et mesure</em>" in body
    assert "Vous devez informer vos patients" in body
    assert "cotisations sociales, ainsi que les forfaits" in body
    assert "ce que nous n'avons pas pu vérifier" in body
    # The letter, in its paper block, in French whatever the page language, placeholders as written.
    assert '<article class="letter" lang="fr" aria-labelledby="letter-version-title">' in body
    assert "Version 1" in body
    assert "<p>Madame, Monsieur,</p> <p>Je soussigné(e) Dr {last_name}, RPPS {rpps}.</p>" in body


def test_paused_campaign_page_has_no_call_to_action(client):
    open_campaign(status="paused")

    body = text(client.get("/campaigns/gironde-2025/"))

    assert "Je signe la lettre d'intention" not in body
    assert "Cette campagne n'accepte pas de signatures pour le moment" in body
    assert "Le texte de la lettre n'a pas encore été publié pour cette campagne." in body


# ---- Account pages (allauth in our layout) -----------------------------------------------------


def test_login_page_uses_the_site_layout_in_french(client):
    response = client.get("/accounts/login/")

    assert response.status_code == 200
    page = assert_site_layout(response, lang="fr")
    assert "site-main--entrance" in page.mains[0]["class"]
    content = response.content.decode()
    assert SKIP_LINK_FR in content
    assert '<label class="field__label" for="id_login">' in content
    # The "forgotten password" help text is announced with the password field.
    password = next(attrs for tag, attrs in page.focusable if attrs.get("id") == "id_password")
    assert password["aria-describedby"] == "id_password_helptext"
    assert '<div class="helptext" id="id_password_helptext">' in content


def test_signup_page_uses_the_site_layout_in_french(client):
    response = client.get("/accounts/signup/")

    assert response.status_code == 200
    assert_site_layout(response, lang="fr")
    content = response.content.decode()
    assert SKIP_LINK_FR in content
    assert '<label class="field__label" for="id_email">' in content
    assert '<label class="field__label" for="id_password1">' in content
    assert '<button class="btn btn--primary" type="submit">' in content


def test_signup_errors_are_tied_to_their_field(client):
    response = client.post("/accounts/signup/", {"email": "pas-un-email", "password1": "", "password2": ""})

    assert response.status_code == 200
    page = outline(response)
    email = next(attrs for tag, attrs in page.focusable if attrs.get("id") == "id_email")
    assert email["aria-invalid"] == "true"
    assert email["aria-describedby"] == "id_email_error"
    content = response.content.decode()
    assert re.search(r'<ul class="errorlist" id="id_email_error"><li>[^<]+</li></ul>', content)
    assert '<div class="field field--error">' in content


# ---- Error pages -----------------------------------------------------------------------------


def test_404_renders_our_page_in_french(client, settings):
    settings.DEBUG = False

    response = client.get("/cette-page-n-existe-pas/")

    assert response.status_code == 404
    assert_site_layout(response, lang="fr")
    body = text(response)
    assert "<h1>Page introuvable</h1>" in body
    assert "Erreur 404" in body
    assert SKIP_LINK_FR in body


def test_500_renders_without_request_context(settings):
    settings.DEBUG = False

    response = defaults.server_error(RequestFactory().get("/"))

    content = response.content.decode()
    assert response.status_code == 500
    assert '<html lang="fr">' in content
    assert "<h1>Un problème est survenu de notre côté</h1>" in unescape(content)
    assert content.count("<main") == 1


@pytest.mark.parametrize(
    ("template", "heading"),
    [
        ("400.html", "Requête invalide"),
        ("403.html", "Accès refusé"),
        ("403_csrf.html", "Formulaire expiré"),
        ("503.html", "Service temporairement indisponible"),
    ],
)
def test_other_error_pages_are_in_french(rf, template, heading):
    request = rf.get("/")
    request.user = AnonymousUser()

    content = unescape(render_to_string(template, request=request))

    assert '<html lang="fr">' in content
    assert f"<h1>{heading}</h1>" in content
    assert content.count("<main") == 1
