"""Every state change goes through here, and each one is audited.

``runs``: a run's lifecycle and people's actions on it; ``clusters``:
inventory imports and host keys.
"""
from .clusters import (accept_host_key, add_cluster, add_hosts, import_cluster, remove_cluster,  # noqa: F401
                       remove_hosts, review_host_key, setup_facts, start_check, update_cluster)
from .runs import (Blocked, Refused, RunConflict, active_run_message, approve_run, approve_step, cancel_requested,  # noqa: F401
                   cancel_run, claim_run, confirm_step, create_run, enqueue_run, finish_step, heartbeat,
                   expire_approvals, interrupt_run, mark_step_done, pause_run, plan_run, record_packages_before,
                   record_start_preflight, reject_run, reject_step, ABANDONABLE, abandon_run, cleanup_steps,
                   release_run, repair_cut_off_steps, resume_run, retry_step, skip_step, start_run, start_step,
                   wait_for_person)
from .runs import record_snapshot  # noqa: F401,E402
from .runs import hand_over_run  # noqa: F401,E402
