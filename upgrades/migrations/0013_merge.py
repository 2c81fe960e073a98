from django.db import migrations


class Migration(migrations.Migration):
    """Joins the branches that each added a 0012 migration after 0011_s4."""

    dependencies = [
        ("upgrades", "0012_ldap"),
        ("upgrades", "0012_onboard"),
        ("upgrades", "0012_api"),
        ("upgrades", "0012_twin"),
    ]

    operations = []
