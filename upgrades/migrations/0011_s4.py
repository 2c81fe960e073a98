from django.db import migrations, models


def rechain(apps, schema_editor):
    """Sign the events recorded so far with the audit key (they were chained by plain
    sha256, which anyone could recompute) and anchor each outside the database.

    The old chain is checked first; what it showed is recorded in an
    ``audit.rechain`` event at the end of the new chain, so a trail that was
    already broken is not made to look whole without a trace."""
    from django.utils import timezone

    from upgrades import audit

    AuditEvent = apps.get_model("upgrades", "AuditEvent")
    AuditHead = apps.get_model("upgrades", "AuditHead")
    head = AuditHead.objects.filter(pk=audit.HEAD_ID).first()
    if not AuditEvent.objects.exists() and not (head and head.seq):
        return  # a new database: nothing to sign, and nothing to say about it
    problem, prev, count = None, "", 0
    for event in AuditEvent.objects.order_by("seq").iterator(chunk_size=2000):
        if problem is None and (event.seq != count + 1 or event.prev_hash != prev
                                or audit.legacy_hash(event, prev) != event.hash):
            where = f"#{event.seq}" if event.seq else f"id {event.pk} (no number)"
            problem = f"the chain broke at event {where}: changed, deleted or added outside the application"
        prev, count = event.hash, count + 1
    if problem is None and head and (head.seq, head.hash) != (count, prev):
        problem = f"the head (#{head.seq}) did not match the last event (#{count})"

    # Each event keeps its number, so a gap the old chain had is still found.
    key_id, key = audit.signing_key()
    prev, last, lines = "", 0, []
    while batch := list(AuditEvent.objects.filter(seq__gt=last).order_by("seq")[:2000]):
        for event in batch:
            event.prev_hash, event.key_id = prev, key_id
            event.hash = prev = audit.event_hash(event, prev, key)
            lines.append(audit.anchor_line(event))
        AuditEvent.objects.bulk_update(batch, ["prev_hash", "key_id", "hash"])
        last = batch[-1].seq
    event = AuditEvent(actor_name="system", action="audit.rechain", created_at=timezone.now(),
                       details={"events": count, "old_chain": problem or "intact"},
                       seq=max(last, head.seq if head else 0) + 1, prev_hash=prev, key_id=key_id)
    event.hash = audit.event_hash(event, prev, key)
    event.save()
    lines.append(audit.anchor_line(event))
    AuditHead.objects.update_or_create(pk=audit.HEAD_ID, defaults={"seq": event.seq, "hash": event.hash})
    anchored = "".join(lines)
    schema_editor.connection.on_commit(lambda: audit.append_anchor(anchored))


class Migration(migrations.Migration):

    dependencies = [
        ('upgrades', '0010_merge'),
    ]

    operations = [
        migrations.AddField(
            model_name='auditevent',
            name='key_id',
            field=models.CharField(blank=True, max_length=16),
        ),
        migrations.RunPython(rechain, migrations.RunPython.noop),
    ]
