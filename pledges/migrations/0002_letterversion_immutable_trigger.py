"""Letter versions are immutable in the database too, not only in LetterVersion.save().

QuerySet.update(), QuerySet.delete() and raw SQL bypass the model; on PostgreSQL a trigger
refuses them. One update stays allowed: setting created_by_id to NULL when the author's account
is deleted (ON DELETE SET NULL), which leaves the letter itself untouched. TRUNCATE (test
database flushes) does not fire row triggers. SQLite keeps the model-level guard only.
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION pledges_letterversion_immutable() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND NEW.created_by_id IS NULL
       AND (to_jsonb(NEW) - 'created_by_id') = (to_jsonb(OLD) - 'created_by_id') THEN
        RETURN NEW;
    END IF;
    -- Everything else, including a no-op update: the row is evidence of what physicians signed.
    RAISE EXCEPTION 'pledges_letterversion % refused: letter version % is immutable', TG_OP, OLD.id
        USING ERRCODE = 'restrict_violation',
              HINT = 'Create a new version with letter_version_create().';
END;
$$;

DROP TRIGGER IF EXISTS pledges_letterversion_immutable ON pledges_letterversion;
CREATE TRIGGER pledges_letterversion_immutable
    BEFORE UPDATE OR DELETE ON pledges_letterversion
    FOR EACH ROW EXECUTE FUNCTION pledges_letterversion_immutable();
"""

DROP = """
DROP TRIGGER IF EXISTS pledges_letterversion_immutable ON pledges_letterversion;
DROP FUNCTION IF EXISTS pledges_letterversion_immutable();
"""


def create_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def drop_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("pledges", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(create_trigger, drop_trigger),
    ]
