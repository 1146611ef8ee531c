"""Celery tasks: thin wrappers, explicit names, safe to run twice.

Counting tasks are idempotent by construction: the advisory lock lets one runner work at a time
and the bookmark (CounterState.counted_until) means a second run only sees newer events.
"""

from celery import shared_task

from pledges.counting import counts_reconcile, counts_update, counts_update_if_due


@shared_task(name="pledges.counts_tick")
def counts_tick() -> dict:
    """Every second from beat: count if the organizer's interval has passed, else return at once."""
    result = counts_update_if_due()
    if result is None:
        return {"due": False}
    if not result.skipped:
        # After counts_update's transaction has committed: evaluating conditions never holds the
        # counting lock, and it costs a few queries when nothing changed (pledges.rounds).
        from pledges.rounds import conditions_evaluate

        conditions_evaluate()
        # The events this count covered go into the public ledger, in a transaction of its own
        # (pledges.ledger): a ledger failure never holds back counts nor crossings.
        from pledges.ledger import ledger_append_pending

        ledger_append_pending()
    return {"due": True, "skipped": result.skipped, "events": result.events}


@shared_task(name="pledges.counts_update")
def counts_update_task() -> dict:
    """Count now, whatever the interval (e.g. from the admin or a shell after an incident)."""
    result = counts_update()
    if not result.skipped:
        from pledges.rounds import conditions_evaluate

        conditions_evaluate()
    return {"skipped": result.skipped, "events": result.events}


@shared_task(name="pledges.counts_reconcile")
def counts_reconcile_task() -> dict:
    """Repair the counts from the pledge rows; drifts are logged by the service."""
    return {"drifts": len(counts_reconcile())}


@shared_task(name="pledges.ledger_repair")
def ledger_repair_task() -> dict:
    """Append to the ledger the events committed too late for the counting tick (hourly)."""
    from pledges.ledger import ledger_append_missing

    return {"entries": ledger_append_missing().entries}


# Signing emails (pledge received, already signed, withdrawn, account deleted) have no task of
# their own any more: pledges.emails queues them into the outbox, sent by deconv.outbox_send.


# --- Conditions, rounds and the campaign's lifecycle ------------------------------------------
# Each service claims its work (row lock + status check, conditional UPDATE, unique constraint)
# and queues emails in the outbox under dedupe keys, so a task that runs twice does nothing twice.


@shared_task(name="pledges.conditions_evaluate", acks_late=True)
def conditions_evaluate_task(*, campaign_ids: list[int] | None = None) -> dict:
    """Evaluate now, even if nothing seems changed (e.g. after a reference population import)."""
    from pledges.rounds import conditions_evaluate

    return {"crossings": conditions_evaluate(campaign_ids=campaign_ids, force=True)}


@shared_task(name="pledges.rounds_close_due", acks_late=True)
def rounds_close_due_task() -> dict:
    from pledges.rounds import rounds_close_due

    return {"closed": rounds_close_due()}


@shared_task(name="pledges.rounds_remind", acks_late=True)
def rounds_remind_task() -> dict:
    from pledges.rounds import rounds_remind

    return {"reminded": rounds_remind()}


@shared_task(name="pledges.milestones_announce", acks_late=True)
def milestones_announce_task() -> dict:
    from pledges.lifecycle import milestones_announce

    return {"milestones": milestones_announce()}


@shared_task(name="pledges.campaigns_close", acks_late=True)
def campaigns_close_task() -> dict:
    """Close campaigns at their date, then expire what every closed campaign left unreleased."""
    from pledges.lifecycle import campaigns_close_due, campaigns_expire

    closed = campaigns_close_due()
    return {"closed": len(closed), "expired_pledges": campaigns_expire()}


@shared_task(name="pledges.campaigns_purge", acks_late=True)
def campaigns_purge_task() -> dict:
    from pledges.lifecycle import campaigns_purge_due

    return {"purged": len(campaigns_purge_due())}


# --- Moderation and the RPPS directory ---------------------------------------------------------
# Imported in the bodies: pledges.moderation and pledges.directory import services that import
# this module's neighbours. Each service claims its job with a conditional UPDATE and is safe to
# run twice (see their docstrings), hence acks_late.


@shared_task(name="pledges.bulk_invalidate", acks_late=True)
def bulk_invalidate(bulk_id: int) -> dict:
    """Invalidate, in batches, the pledges matching a confirmed BulkInvalidation's rule."""
    from pledges.moderation import bulk_invalidation_run

    bulk = bulk_invalidation_run(bulk_id=bulk_id)
    return {"status": bulk.status, "invalidated": bulk.progress_done}


@shared_task(name="pledges.directory_import", acks_late=True)
def directory_import(import_id: int) -> dict:
    """Import an uploaded RPPS directory file, then verify every pledge against it."""
    from pledges.directory import directory_import_run, pledge_verification_run
    from pledges.enums import BundleStatus

    result = directory_import_run(import_id=import_id)
    counts = pledge_verification_run() if result.status == BundleStatus.DONE else {}
    return {"status": result.status, "physicians": result.physicians_kept, **counts}


@shared_task(name="pledges.directory_verify", acks_late=True)
def directory_verify(campaign_id: int) -> dict:
    """Verify one campaign's pledges against the directory already imported."""
    from pledges.directory import pledge_verification_run

    return pledge_verification_run(campaign_id=campaign_id)


# --- Organizers' exports ------------------------------------------------------------------------


@shared_task(name="pledges.export_build", acks_late=True)
def export_build_task(export_id: int) -> str:
    """Build one export's file; a second delivery finds the job claimed and does nothing."""
    from pledges.exports import export_build

    return export_build(export_id=export_id)


# --- Released letters, escrow bundles, follow-through ------------------------------------------
# Imported in the bodies, like the sections above. Each service claims its work (FOR UPDATE SKIP
# LOCKED batches and the Letter.pledge OneToOne; conditional UPDATEs on Release, EscrowBundle and
# Letter.followup_reminded_at), so a redelivered task does nothing twice: hence acks_late.


@shared_task(name="pledges.release_process", acks_late=True)
def release_process_task(release_id: int) -> dict:
    """Dispatched by the conditions work when a territory is released (pledges.rounds)."""
    from pledges.letters_pipeline import release_process

    result = release_process(release_id=release_id)
    return {"letters_created": result.letters_created, "finished": result.finished}


@shared_task(name="pledges.release_letters_help", acks_late=True)
def release_letters_help(release_id: int) -> dict:
    """A second worker process rendering batches of a large release alongside release_process."""
    from pledges.letters_pipeline import release_process

    result = release_process(release_id=release_id, helpers=False)
    return {"letters_created": result.letters_created, "finished": result.finished}


@shared_task(name="pledges.releases_resume", acks_late=True)
def releases_resume_task() -> dict:
    from pledges.letters_pipeline import releases_resume

    return {"resumed": releases_resume()}


@shared_task(name="pledges.letters_refresh", acks_late=True)
def letters_refresh_task(release_id: int | None = None) -> dict:
    """Regenerate the letters not yet sent whose inputs changed (e.g. a caisse address corrected)."""
    from pledges.letters_pipeline import letters_refresh
    from pledges.models import Release

    release = Release.objects.get(pk=release_id) if release_id is not None else None
    return {"regenerated": letters_refresh(release=release)}


@shared_task(name="pledges.escrow_bundle_build", acks_late=True)
def escrow_bundle_build_task(bundle_id: int) -> dict:
    from pledges.escrow import escrow_bundle_build

    return {"built": escrow_bundle_build(bundle_id=bundle_id)}


@shared_task(name="pledges.followup_remind", acks_late=True)
def followup_remind_task() -> dict:
    from pledges.followthrough import followup_remind

    return {"reminded": followup_remind()}


# --- Organizers' jobs: recovery and export retention (pledges.jobs, pledges.exports) -----------
# Both only dispatch, or delete files past their date: running twice changes nothing twice.


@shared_task(name="pledges.jobs_recover", acks_late=True)
def jobs_recover_task() -> dict:
    """Dispatch again the jobs left queued (lost message) or running by a worker that died."""
    from pledges.jobs import jobs_recover

    return jobs_recover()


@shared_task(name="pledges.exports_purge", acks_late=True)
def exports_purge_task() -> dict:
    """Delete the export files past EXPORT_RETENTION_HOURS (the job rows stay)."""
    from pledges.exports import exports_purge_expired

    return {"deleted": exports_purge_expired()}


# --- Organizer dashboard snapshots (pledges.dashboard_snapshot) ---------------------------------
# A tick recomputes only the snapshots that are due, each under a per-campaign lock taken
# without waiting: running twice, or alongside a request computing one, aggregates nothing twice.


@shared_task(name="pledges.dashboard_snapshots_refresh")
def dashboard_snapshots_refresh_task() -> dict:
    """From beat: refresh the dashboards organizers are watching, and open campaigns' at their maximum age."""
    from pledges.dashboard_snapshot import dashboard_snapshots_refresh

    return {"refreshed": dashboard_snapshots_refresh()}
