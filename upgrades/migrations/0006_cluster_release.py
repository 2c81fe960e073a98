from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("upgrades", "0005_runbook_engine"),
    ]

    operations = [
        migrations.AddField(
            model_name="cluster",
            name="detected_release",
            field=models.CharField(blank=True, help_text="The oVirt release the HA poller found on the hosts (docs/vm-status.md).", max_length=200),
        ),
    ]
