"""The four role groups and the built-in runbook kinds."""
from django.db import migrations

ROLES = ("viewer", "operator", "approver", "admin")
RUNBOOKS = (
    ("diagnostic", "Diagnostic", "Read-only checks on one host: identity, OS release and hosted-engine status."),
)


def create(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Runbook = apps.get_model("upgrades", "Runbook")
    for name in ROLES:
        Group.objects.get_or_create(name=name)
    for slug, name, description in RUNBOOKS:
        Runbook.objects.get_or_create(slug=slug, defaults={"name": name, "description": description})


def remove(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=ROLES).delete()


class Migration(migrations.Migration):
    dependencies = [("upgrades", "0001_initial"), ("auth", "0012_alter_user_first_name_max_length")]
    operations = [migrations.RunPython(create, remove)]
