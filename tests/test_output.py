"""The output recorder on its own: cleaning, ordering, batching."""
import pytest

from tests.factories import make_cluster, make_host, make_run
from upgrades.models import StepOutput
from upgrades.output import MAX_LINE_CHARS, OutputRecorder, clean_line

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_progress_bar_keeps_what_a_terminal_shows():
    assert clean_line("  10%\r  50%\r 100% done") == " 100% done"
    assert clean_line("Downloading\r") == "Downloading"


def test_nul_bytes_and_huge_lines_are_made_storable():
    assert clean_line("a\x00b") == "a\ufffdb"
    cut = clean_line("x" * (MAX_LINE_CHARS + 10))
    assert cut.startswith("x" * MAX_LINE_CHARS) and cut.endswith("[line cut at 16384 characters]")


def test_lines_get_consecutive_sequence_numbers_across_recorders(make_user):
    run = make_run(make_user("operator"), make_host(), ["true"])
    step = run.steps.get()
    with OutputRecorder(step) as recorder:
        for i in range(2500):
            recorder.line("stdout", f"l{i}")
    with OutputRecorder(step) as recorder:  # a retried step appends after what it had
        recorder.line("stderr", "again\x00")
    rows = list(StepOutput.objects.filter(step=step).order_by("seq").values_list("seq", "stream", "text"))
    assert [seq for seq, _, _ in rows] == list(range(1, 2502))
    assert rows[0] == (1, "stdout", "l0")
    assert rows[-1] == (2501, "stderr", "again\ufffd")


def test_closing_a_recorder_never_loses_the_wakeup(make_user):
    """close() comes at any moment of the flusher's loop, also between its wait and
    its drain; each one returns, with every line stored. (The flag read before the
    wake-up was cleared missed such a close: the flusher slept for good and the
    job with it. The window is a few microseconds: many rounds, each close timed to
    land as the flusher's batch delay ends.)"""
    import threading
    import time

    run = make_run(make_user("operator"), make_host(), ["true"])
    step = run.steps.get()
    total = 0
    for round_ in range(400):
        recorder = OutputRecorder(step, batch_seconds=0.001)
        recorder.__enter__()
        recorder.line("stdout", f"r{round_}")
        time.sleep(0.001 + (round_ % 7) * 0.0001)
        closer = threading.Thread(target=recorder.close, daemon=True)
        closer.start()
        closer.join(timeout=10)
        assert not closer.is_alive(), f"close() hung in round {round_}"
        total += 1
    assert StepOutput.objects.filter(step=step).count() == total


def test_recorders_open_at_once_in_one_process_each_store_every_line(make_user):
    """One flusher thread serves every recorder of the process: a slow trickle on one
    step and a flood on another both arrive whole, each in its own order."""
    import threading
    import time

    user = make_user("operator")
    steps = [make_run(user, make_host(make_cluster(name=f"c{n}")), ["true"]).steps.get() for n in range(2)]

    def flood(step):
        with OutputRecorder(step) as recorder:
            for i in range(20000):
                recorder.line("stdout", f"f{i}")

    def trickle(step):
        with OutputRecorder(step) as recorder:
            for i in range(20):
                recorder.line("stderr", f"t{i}")
                time.sleep(0.005)

    threads = [threading.Thread(target=flood, args=(steps[0],)), threading.Thread(target=trickle, args=(steps[1],))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    flooded = list(StepOutput.objects.filter(step=steps[0]).order_by("seq").values_list("seq", "text"))
    assert flooded == [(i + 1, f"f{i}") for i in range(20000)]
    trickled = list(StepOutput.objects.filter(step=steps[1]).order_by("seq").values_list("seq", "text"))
    assert trickled == [(i + 1, f"t{i}") for i in range(20)]
    assert [t.name for t in threading.enumerate()].count("output") == 1


def test_lines_whose_numbers_were_taken_meanwhile_follow_and_the_next_step_still_records(make_user):
    """The flusher thread is shared by the process: a batch the database refuses is kept,
    never dropped; one whose numbers another writer took meanwhile is numbered after
    those, and the thread goes on serving the next recorders."""
    user = make_user("operator")
    first, second = (make_run(user, make_host(make_cluster(name=f"c{n}")), ["true"]).steps.get() for n in range(2))
    recorder = OutputRecorder(first)
    StepOutput.objects.create(step=first, seq=1, text="already there")  # the seq the recorder takes next
    recorder.__enter__()
    recorder.line("stdout", "refused once")
    recorder.close()
    assert list(StepOutput.objects.filter(step=first).order_by("seq").values_list("seq", "text")) == [
        (1, "already there"), (2, "refused once")]
    assert recorder.last_seq == 2
    with OutputRecorder(second) as recorder:
        recorder.line("stdout", "stored")
    assert list(StepOutput.objects.filter(step=second).values_list("seq", "text")) == [(1, "stored")]
