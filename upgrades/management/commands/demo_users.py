"""Create the demo accounts; each password is printed once, when created."""
import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand

DEMO_USERS = (("admin", "admin"), ("operator", "operator"), ("approver", "approver"))
# Each gets an address, so approval requests reach them (the demo writes mail to data/mail/).
EMAIL_DOMAIN = "heportal.example"


class Command(BaseCommand):
    help = "Create demo users admin, operator and approver with addresses and random passwords."

    def handle(self, *args, **options):
        User = get_user_model()
        for username, role in DEMO_USERS:
            email = f"{username}@{EMAIL_DOMAIN}"
            existing = User.objects.filter(username=username).first()
            if existing is not None:
                if not existing.email:  # an older demo's user: give it its address
                    existing.email = email
                    existing.save(update_fields=["email"])
                self.stdout.write(f"  {username:<9} {existing.email:<26} "
                                  "(exists; password as printed when it was created)")
                continue
            password = secrets.token_urlsafe(9)
            user = User.objects.create_user(username, email=email, password=password, is_staff=(role == "admin"),
                                            is_superuser=(role == "admin"))
            user.groups.add(Group.objects.get_or_create(name=role)[0])
            self.stdout.write(f"  {username:<9} {email:<26} password: {password}")
