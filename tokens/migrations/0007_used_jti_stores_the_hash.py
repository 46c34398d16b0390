"""Single-use `jti`s are kept as their SHA-256 (the durable replay record, any length of jti)."""

import hashlib

from django.db import migrations, models


def hash_existing(apps, schema_editor):
    UsedJti = apps.get_model("tokens", "UsedJti")
    for row in UsedJti.objects.only("id", "jti").iterator():
        row.jti_sha256 = hashlib.sha256(row.jti.encode("utf-8", "surrogatepass")).hexdigest()
        row.save(update_fields=["jti_sha256"])


class Migration(migrations.Migration):
    dependencies = [
        ("tokens", "0006_partial_reference_indexes"),
    ]

    operations = [
        migrations.AddField(
            model_name="usedjti",
            name="jti_sha256",
            field=models.CharField(default="", max_length=64),
            preserve_default=False,
        ),
        migrations.RunPython(hash_existing, migrations.RunPython.noop),
        migrations.RemoveConstraint(model_name="usedjti", name="used_jti_unique"),
        migrations.RemoveField(model_name="usedjti", name="jti"),
        migrations.AddConstraint(
            model_name="usedjti",
            constraint=models.UniqueConstraint(
                fields=("issuer_id", "jti_sha256"), name="used_jti_hash_unique"
            ),
        ),
    ]
