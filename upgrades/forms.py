"""Small forms for the pages; a runbook's parameters use ``upgrades.plan.param_form``."""
from django import forms

TEXT_LIMIT = 2000


class ActionForm(forms.Form):
    """What a person may write with an action on a run or a step.

    Whether a reason is required is the service's rule (``skip_step``,
    ``mark_step_done``); here only the length is bounded.
    """

    comment = forms.CharField(required=False, max_length=TEXT_LIMIT, strip=True)
    reason = forms.CharField(required=False, max_length=TEXT_LIMIT, strip=True)

