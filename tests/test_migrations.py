"""The schema: migrations match the models, and upgrading keeps every row."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select, text

from citesmail.audience.consent import history
from citesmail.audience.segments import all_segments, parse_condition
from citesmail.db import (
    HEAD,
    MIGRATIONS,
    Base,
    Contact,
    MailingList,
    Membership,
    current_revision,
    make_engine,
    open_database,
    upgrade,
)


def test_head_constant_is_alembic_head() -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_current_head() == HEAD


def test_migrations_build_exactly_the_models(db_url: str) -> None:
    db = open_database(db_url)
    with db.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    db.close()


def test_upgrade_from_the_first_migration_keeps_data(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine, "0001")
    assert current_revision(engine) == "0001"
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO contacts (id, email, email_key, domain, first_name, attributes, status,"
            " created_at, updated_at) VALUES (1, 'Zoé@exemple.fr', 'zoé@exemple.fr',"
            " 'exemple.fr', 'Zoé', '{\"secteur\": \"emploi\"}', 'unsubscribed',"
            " '2024-01-02 03:04:05', '2024-01-02 03:04:05')"))
        connection.execute(text("INSERT INTO lists (id, name, title, description, created_at)"
                                " VALUES (1, 'partenaires', 'P', '', '2024-01-02 03:04:05')"))
        connection.execute(text("INSERT INTO memberships (list_id, contact_id, added_at)"
                                " VALUES (1, 1, '2024-01-02 03:04:05')"))
    engine.dispose()

    db = open_database(db_url)  # a command opening an older database upgrades it
    assert current_revision(db.engine) == HEAD
    with db.session() as session:
        contact = session.scalars(select(Contact)).one()
        assert (contact.email, contact.first_name, contact.status) == (
            "Zoé@exemple.fr", "Zoé", "unsubscribed")
        assert contact.attributes == {"secteur": "emploi"}
        assert contact.created_at.isoformat() == "2024-01-02T03:04:05+00:00"
        assert (contact.search_key, contact.attributes_key) == (
            "zoe zoe@exemple.fr", {"secteur": "emploi"})  # folded for segments and search
        assert session.scalars(select(MailingList.name)).all() == ["partenaires"]
        assert session.scalars(select(Membership.contact_id)).all() == [1]
    db.close()


def test_segments_saved_before_folding_keep_their_exact_matching(db_url: str) -> None:
    """`=` and `!=` compared exactly before 0005: a saved segment reaches the same people."""
    engine = make_engine(db_url)
    upgrade(engine, "0004")
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO segments (id, name, definition, created_at) VALUES (1, 'dp', "
            "'{\"lists\": [], \"exclude_lists\": [], \"where\": "
            "[\"role=DP\", \"territory!=Lyon\", \"attr.note=a=b\"]}', '2024-01-02 03:04:05')"))
        connection.execute(text(
            "INSERT INTO contacts (id, email, email_key, domain, role, territory, attributes,"
            " status, created_at, updated_at) VALUES (1, 'a@ex.fr', 'a@ex.fr', 'ex.fr',"
            " 'Délégué du préfet', 'Saint-Étienne', '{}', 'active', '2024-01-02 03:04:05',"
            " '2024-01-02 03:04:05')"))
    engine.dispose()
    db = open_database(db_url)
    with db.session() as session:
        assert all_segments(session)[0][1].where == [
            parse_condition("role==DP"), parse_condition("territory!==Lyon"),
            parse_condition("attr.note==a=b")]
        contact = session.scalars(select(Contact)).one()
        assert (contact.role_key, contact.territory_key) == (
            "delegue du prefet", "saint-etienne")
    db.close()
    engine = make_engine(db_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0004")
    with engine.connect() as connection:
        saved = connection.execute(text("SELECT definition FROM segments")).scalar_one()
    engine.dispose()
    assert "role=DP" in str(saved) and "territory!=Lyon" in str(saved)


def test_upgrade_from_0005_turns_each_contacts_consent_into_its_first_event(
        db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine, "0005")
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO contacts (id, email, email_key, domain, attributes, status,"
            " consent_source, consent_at, created_at, updated_at) VALUES"
            " (1, 'a@ex.fr', 'a@ex.fr', 'ex.fr', '{}', 'active', 'import:contacts.csv',"
            " '2024-01-02 03:04:05', '2024-01-02 03:04:05', '2024-01-02 03:04:05'),"
            " (2, 'b@ex.fr', 'b@ex.fr', 'ex.fr', '{}', 'active', NULL, NULL,"
            " '2024-01-02 03:04:05', '2024-01-02 03:04:05')"))
        connection.execute(text("INSERT INTO lists (id, name, title, description, created_at)"
                                " VALUES (1, 'partenaires', 'P', '', '2024-01-02 03:04:05')"))
        connection.execute(text("INSERT INTO memberships (list_id, contact_id, added_at)"
                                " VALUES (1, 1, '2024-01-02 03:04:05'),"
                                " (1, 2, '2024-01-02 03:04:05')"))
    engine.dispose()

    db = open_database(db_url)
    with db.session() as session:
        assert [(e.kind, e.source, e.at.isoformat(), e.list_name, e.text)
                for e in history(session, 1)] == [
            ("import", "contacts.csv", "2024-01-02T03:04:05+00:00", None, None)]
        assert history(session, 2) == []
        assert session.scalars(select(Membership.contact_id)
                               .order_by(Membership.contact_id)).all() == [1, 2]
        assert session.scalars(select(MailingList.public)).all() == [False]
    db.close()
    engine = make_engine(db_url)
    with engine.connect() as connection:
        assert "consent_source" not in {c["name"] for c in inspect(connection)
                                        .get_columns("contacts")}
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0005")
    with engine.connect() as connection:
        back = connection.execute(text("SELECT id, consent_source FROM contacts ORDER BY id"))
        assert back.all() == [(1, "import:contacts.csv"), (2, None)]
        assert connection.execute(text("SELECT COUNT(*) FROM memberships")).scalar() == 2
    engine.dispose()
