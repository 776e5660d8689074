"""Folded text: case, accents, ligatures and runs of spaces ignored; other letters kept."""

from __future__ import annotations

import pytest

from citesmail.folding import contact_keys, fold, fold_value


@pytest.mark.parametrize(("text", "folded"), [
    ("Délégué  du Préfet ", "delegue du prefet"),
    ("ÉCHIROLLES", "echirolles"),
    ("e\u0301cole", "ecole"),  # decomposed, as some systems write it
    ("BŒUF", "boeuf"), ("Lætitia", "laetitia"), ("Straße", "strasse"), ("ﬁn", "fin"),
    ("Anne\tMARTIN", "anne martin"),
    ("Москва", "москва"), ("हिन्दी", "हिन्दी"),  # other scripts: lower case, marks kept
])
def test_fold(text: str, folded: str) -> None:
    assert fold(text) == folded
    assert fold_value(text) == folded


def test_contact_keys_cover_the_compared_fields() -> None:
    assert contact_keys({"email": "Zoé@ex.fr", "first_name": "Zoé", "last_name": None,
                         "organization": "Mairie", "role": "Élu", "territory": None,
                         "attributes": {"Secteur": "Santé"}}) == {
        "role_key": "elu", "territory_key": None, "organization_key": "mairie",
        "attributes_key": {"Secteur": "sante"}, "search_key": "zoe zoe@ex.fr mairie"}
    assert contact_keys({})["search_key"] == ""
