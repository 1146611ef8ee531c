"""{% ledger_receipt campaign pledge.receipt_id as receipt %}: the signer's receipt in the public ledger.

A tag rather than a view variable so that "Mon engagement" shows the receipt without a change to
the signing views (two indexed queries, on a page only the signer sees).
"""

from django import template

from pledges.ledger import ReceiptStatus, ledger_receipt_lookup
from pledges.models import Campaign

register = template.Library()


@register.simple_tag
def ledger_receipt(campaign: Campaign, receipt_id) -> ReceiptStatus:
    return ledger_receipt_lookup(campaign=campaign, receipt_id=str(receipt_id))
