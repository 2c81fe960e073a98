"""Create the demo accounts; each password is printed once, when created."""
import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand

DEMO_USERS = (("admin", "admin"), ("operator", "operator"), ("approver", "approver"))


class Command(BaseCommand):
    help = "Create demo users admin, operator and approver with random passwords."

    def handle(self, *args, **options):
        User = get_user_model()
        for username, role in DEMO_USERS:
            if User.objects.filter(username=username).exists():
                self.stdout.write(f"  {username:<9} (exists; password as printed when it was created)")
                continue
            password = secrets.token_urlsafe(9)
            user = User.objects.create_user(username, password=password, is_staff=(role == "admin"),
                                            is_superuser=(role == "admin"))
            user.groups.add(Group.objects.get_or_create(name=role)[0])
            self.stdout.write(f"  {username:<9} password: {password}")
