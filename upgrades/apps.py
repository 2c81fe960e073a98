from django.apps import AppConfig


class UpgradesConfig(AppConfig):
    default_auto_field = 'django.db.models.BigAutoField'
    name = 'upgrades'
