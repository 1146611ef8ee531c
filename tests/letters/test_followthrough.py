"""After release: sent, acknowledged, effective; the reminder; the funnel."""

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.urls import reverse

from deconv.models import OutgoingEmail
from pledges.enums import LetterStatus, PledgeStatus, RoundAnswer, TerritoryLevel
from pledges.followthrough import (
    Funnel,
    _latest_effective_acknowledgement,
    followup_remind,
    letter_acknowledged_record,
    letter_sent_record,
    release_funnel,
)
from pledges.letters_pipeline import release_process
from pledges.models import Letter
from tests.letters.factories import DepartmentFactory, ReleasedPledgeFactory

PARIS = ZoneInfo("Europe/Paris")


@pytest.fixture
def letter(release, make_pledges):
    (pledge,) = make_pledges(1)
    release_process(release_id=release.pk)
    return Letter.objects.select_related("release", "pledge").get(pledge=pledge)


# --- Dates -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("acknowledged_on", "effective_on"),
    [
        (date(2026, 3, 10), date(2026, 4, 10)),
        (date(2027, 1, 31), date(2027, 2, 28)),
        (date(2028, 1, 31), date(2028, 2, 29)),  # leap year
        (date(2026, 3, 31), date(2026, 4, 30)),
        (date(2026, 12, 15), date(2027, 1, 15)),
    ],
)
def test_effective_date_is_one_calendar_month_after_the_acknowledgement(acknowledged_on, effective_on):
    assert Letter(acknowledged_on=acknowledged_on).effective_on == effective_on


def test_no_effective_date_before_the_acknowledgement():
    assert Letter(sent_on=date(2026, 3, 5)).effective_on is None


@pytest.mark.parametrize(
    ("today", "latest"),
    [
        (date(2026, 4, 10), date(2026, 3, 10)),
        # 31 January + 1 month = 28 February: on 28 February, acknowledgements up to 31 January count.
        (date(2027, 2, 28), date(2027, 1, 31)),
        (date(2028, 2, 29), date(2028, 1, 31)),
        (date(2028, 2, 28), date(2028, 1, 28)),
        (date(2026, 4, 30), date(2026, 3, 31)),
    ],
)
def test_latest_effective_acknowledgement_matches_relativedelta(today, latest):
    assert _latest_effective_acknowledgement(today) == latest
    assert Letter(acknowledged_on=latest).effective_on <= today
    assert Letter(acknowledged_on=latest + timedelta(days=1)).effective_on > today


# --- Recording -----------------------------------------------------------------------------------


@time_machine.travel(datetime(2026, 3, 20, 12, 0, tzinfo=PARIS))
def test_sent_then_acknowledged_sets_the_dates_statuses_and_effective_date(letter):
    letter = letter_sent_record(
        letter=letter, sent_on=date(2026, 3, 4), registered_mail_number=" 1A 234 567 "
    )
    assert (letter.status, letter.sent_on, letter.registered_mail_number) == (
        LetterStatus.SENT,
        date(2026, 3, 4),
        "1A 234 567",
    )
    letter = letter_acknowledged_record(letter=letter, acknowledged_on=date(2026, 3, 6))
    letter.refresh_from_db()
    assert (letter.status, letter.acknowledged_on, letter.effective_on) == (
        LetterStatus.ACKNOWLEDGED,
        date(2026, 3, 6),
        date(2026, 4, 6),
    )


@time_machine.travel(datetime(2026, 3, 20, 12, 0, tzinfo=PARIS))
@pytest.mark.parametrize(
    ("sent_on", "code"),
    [(date(2026, 3, 21), "future"), (date(2026, 3, 1), "before_release")],
)
def test_impossible_sending_dates_are_refused(letter, sent_on, code):
    with pytest.raises(ValidationError) as error:
        letter_sent_record(letter=letter, sent_on=sent_on)
    assert error.value.code == code
    letter.refresh_from_db()
    assert (letter.sent_on, letter.status) == (None, LetterStatus.GENERATED)


@time_machine.travel(datetime(2026, 3, 20, 12, 0, tzinfo=PARIS))
def test_acknowledgement_needs_sending_first_and_a_date_between_sending_and_today(letter):
    with pytest.raises(ValidationError) as error:
        letter_acknowledged_record(letter=letter, acknowledged_on=date(2026, 3, 10))
    assert error.value.code == "not_sent"
    letter = letter_sent_record(letter=letter, sent_on=date(2026, 3, 10))
    for acknowledged_on, code in ((date(2026, 3, 9), "before_sent"), (date(2026, 3, 21), "future")):
        with pytest.raises(ValidationError) as error:
            letter_acknowledged_record(letter=letter, acknowledged_on=acknowledged_on)
        assert error.value.code == code
    letter.refresh_from_db()
    assert (letter.acknowledged_on, letter.status) == (None, LetterStatus.SENT)
    # The day it was sent is possible (a caisse next door).
    assert letter_acknowledged_record(letter=letter, acknowledged_on=date(2026, 3, 10)).effective_on == date(
        2026, 4, 10
    )


# --- On "Mon engagement" -------------------------------------------------------------------------


@time_machine.travel(datetime(2026, 3, 20, 12, 0, tzinfo=PARIS))
def test_mon_engagement_shows_the_letter_steps_and_the_effective_date_in_french(client, letter):
    pledge = letter.pledge
    client.force_login(pledge.user)
    mine = reverse("pledges:pledge_mine", kwargs={"slug": pledge.campaign.slug})

    html = client.get(mine, HTTP_ACCEPT_LANGUAGE="fr").content.decode()
    assert reverse("pledges:letter_download", kwargs={"letter_id": letter.pk}) in html
    assert reverse("pledges:letter_sent", kwargs={"slug": pledge.campaign.slug}) in html
    assert "1 place de la Grenouillère" in html

    response = client.post(
        reverse("pledges:letter_sent", kwargs={"slug": pledge.campaign.slug}),
        {"sent_on": "2026-03-05", "registered_mail_number": "1A23"},
    )
    assert response.status_code == 302 and response["Location"] == mine
    response = client.post(
        reverse("pledges:letter_acknowledged", kwargs={"slug": pledge.campaign.slug}),
        {"acknowledged_on": "2026-01-31"},
    )
    assert response.status_code == 200  # before sending: the form again, with its error
    assert 'id="id_acknowledged_on_error"' in response.content.decode()
    response = client.post(
        reverse("pledges:letter_acknowledged", kwargs={"slug": pledge.campaign.slug}),
        {"acknowledged_on": "2026-03-07"},
    )
    assert response.status_code == 302

    html = client.get(mine, HTTP_ACCEPT_LANGUAGE="fr").content.decode()
    assert "7 avril 2026" in html
    letter.refresh_from_db()
    assert letter.effective_on == date(2026, 4, 7)


def test_follow_through_pages_are_for_the_signer_only(client, letter):
    slug = letter.pledge.campaign.slug
    urls = [
        reverse("pledges:letter_sent", kwargs={"slug": slug}),
        reverse("pledges:letter_acknowledged", kwargs={"slug": slug}),
    ]
    for url in urls:
        assert client.get(url).status_code == 302
    other = ReleasedPledgeFactory(release=None, campaign=letter.pledge.campaign, status=PledgeStatus.ACTIVE)
    client.force_login(other.user)
    for url in urls:
        assert client.get(url).status_code == 404
        assert client.post(url, {"sent_on": "2026-03-05", "acknowledged_on": "2026-03-06"}).status_code == 404
    letter.refresh_from_db()
    assert letter.sent_on is None


def test_bad_dates_in_the_form_are_errors_not_500s(client, letter):
    client.force_login(letter.pledge.user)
    url = reverse("pledges:letter_sent", kwargs={"slug": letter.pledge.campaign.slug})
    for value in ("", "not-a-date", "2026-02-30", "99999-01-01"):
        response = client.post(url, {"sent_on": value})
        assert response.status_code == 200
        assert 'id="id_sent_on_error"' in response.content.decode()


# --- The reminder ---------------------------------------------------------------------------------


def test_followup_reminder_goes_once_after_the_delay_to_those_who_have_not_reported(release, make_pledges):
    silent, reported, stopped = make_pledges(3)
    stopped.emails_stopped_at = release.released_at
    stopped.save()
    release_process(release_id=release.pk)
    letter_sent_record(letter=Letter.objects.get(pledge=reported), sent_on=date(2026, 3, 3))
    delay = release.campaign.followup_reminder_days

    with time_machine.travel(release.released_at + timedelta(days=delay) - timedelta(hours=1)):
        assert followup_remind() == 0
    with time_machine.travel(release.released_at + timedelta(days=delay, hours=1)):
        assert followup_remind() == 1
        assert followup_remind() == 0
    with time_machine.travel(release.released_at + timedelta(days=delay + 30)):
        assert followup_remind() == 0

    reminders = OutgoingEmail.objects.filter(kind="followup_reminder")
    assert [(e.recipient, e.dedupe_key) for e in reminders] == [
        (silent.user.email, f"followup_reminder:{Letter.objects.get(pledge=silent).pk}")
    ]
    assert "/letters/link/" in reminders[0].body_text
    assert Letter.objects.get(pledge=silent).followup_reminded_at is not None


# --- The funnel --------------------------------------------------------------------------------


def test_release_funnel_counts_each_stage_per_territory_in_one_query(
    campaign, release, caisse, django_assert_num_queries
):
    from pledges.models import ConfirmationRound, Crossing, RoundResponse

    pledges = [ReleasedPledgeFactory(release=release, caisse=caisse) for _ in range(4)]
    active = ReleasedPledgeFactory(release=None, campaign=campaign, status=PledgeStatus.ACTIVE, caisse=caisse)
    declined = ReleasedPledgeFactory(
        release=None, campaign=campaign, status=PledgeStatus.ACTIVE, caisse=caisse
    )
    ReleasedPledgeFactory(release=None, campaign=campaign, status=PledgeStatus.WITHDRAWN, caisse=caisse)
    elsewhere_department = DepartmentFactory(code="03", name="Allier", position=3)
    elsewhere = ReleasedPledgeFactory(
        release=None,
        campaign=campaign,
        status=PledgeStatus.ACTIVE,
        department=elsewhere_department,
        caisse=None,
    )
    crossing = Crossing.objects.create(
        campaign=campaign,
        level="department",
        code="01",
        round_number=1,
        crossed_at=release.released_at,
        count_at_crossing=6,
        target_at_crossing=5,
        national_count_at_crossing=7,
    )
    round = ConfirmationRound.objects.create(
        crossing=crossing, opened_at=release.released_at, ends_at=release.released_at
    )
    for pledge in (*pledges, active):
        RoundResponse.objects.create(
            round=round, pledge=pledge, answer=RoundAnswer.CONFIRMED, answered_at=release.released_at
        )
    RoundResponse.objects.create(
        round=round, pledge=declined, answer=RoundAnswer.DECLINED, answered_at=release.released_at
    )
    release_process(release_id=release.pk)
    letters = [Letter.objects.get(pledge=p) for p in pledges]
    with time_machine.travel(datetime(2026, 3, 20, 12, 0, tzinfo=PARIS)):
        for letter in letters[:3]:
            letter_sent_record(letter=letter, sent_on=date(2026, 3, 3))
        letter_acknowledged_record(
            letter=letters[0], acknowledged_on=date(2026, 1, 31) + timedelta(days=33)
        )  # 5 March
        letter_acknowledged_record(letter=letters[1], acknowledged_on=date(2026, 3, 10))

    with django_assert_num_queries(1):
        funnel = release_funnel(campaign=campaign, today=date(2026, 4, 5))

    ain = Funnel(pledged=6, confirmed=5, released=4, sent=3, acknowledged=2, effective=1)
    assert funnel[(TerritoryLevel.DEPARTMENT, "01")] == ain
    assert funnel[(TerritoryLevel.DEPARTMENT, "03")] == Funnel(pledged=1)
    assert funnel[(TerritoryLevel.REGION, "84")] == ain + Funnel(pledged=1)
    assert funnel[(TerritoryLevel.NATION, "FR")] == ain + Funnel(pledged=1)
    assert elsewhere.department.region.code == "84"
    assert (
        release_funnel(campaign=campaign, today=date(2026, 4, 10))[
            (TerritoryLevel.DEPARTMENT, "01")
        ].effective
        == 2
    )


def test_mon_engagement_says_the_letter_is_being_prepared_until_it_exists(client, make_pledges):
    (pledge,) = make_pledges(1)
    client.force_login(pledge.user)

    response = client.get(reverse("pledges:pledge_mine", kwargs={"slug": pledge.campaign.slug}))

    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="released-title"' in html
    assert "/letters/" not in html and "letter-sent" not in html
