"""Audience: contacts, lists, segments and suppression, over the database of db.py."""
