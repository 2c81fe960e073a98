# Directory logins (DirectoryAccount, DirectoryRole) and the audit's client address.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('upgrades', '0011_s4'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='auditevent',
            name='client_address',
            field=models.CharField(blank=True, db_default='', default='', max_length=45),
        ),
        migrations.CreateModel(
            name='DirectoryAccount',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('dn', models.CharField(max_length=500, verbose_name='directory DN')),
                ('synced_at', models.DateTimeField(help_text='The last login, when its groups and roles were read.')),
                ('user', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='directory_account', to=settings.AUTH_USER_MODEL)),
            ],
        ),
        migrations.CreateModel(
            name='DirectoryRole',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('role', models.CharField(choices=[('viewer', 'Viewer'), ('operator', 'Operator'), ('approver', 'Approver'), ('auditor', 'Auditor'), ('admin', 'Admin')], max_length=10)),
                ('group_dn', models.CharField(max_length=500, verbose_name='directory group')),
                ('cluster', models.ForeignKey(blank=True, help_text='Empty: every cluster.', null=True, on_delete=django.db.models.deletion.CASCADE, related_name='directory_roles', to='upgrades.cluster')),
                ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='directory_roles', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'ordering': ['user', 'cluster', 'role'],
            },
        ),
    ]
