"""The community's preferences and features as the server's configuration makes them.

No database: the catalog (community/catalog.py) with the operator's overrides
(`DOVECOTE_PREFERENCES`) applied. `check_overrides` runs when the app is built, so a typo in
the configuration stops the server at start instead of surfacing in a browser.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from dovecote.community.catalog import FEATURES, PREFERENCES, Feature, Preference
from dovecote.core.errors import InvalidInput, NotFound
from dovecote.core.settings import Settings

ORDERINGS = ("id", "section", "name")


@dataclass(frozen=True, slots=True)
class Numbered:
    id: int
    preference: Preference


def check_overrides(settings: Settings) -> None:
    """ValueError naming every override that is not a known preference or has the wrong type."""
    known = {p.key: p for p in PREFERENCES}
    problems = []
    for key, value in settings.preferences.items():
        preference = known.get(key)
        if preference is None:
            problems.append(f"{key!r} is not a preference Dovecote serves")
        elif type(value) is not type(preference.value):
            wanted = type(preference.value).__name__
            problems.append(f"{key!r} must be a {wanted}, not {value!r}")
    if problems:
        raise ValueError("DOVECOTE_PREFERENCES: " + "; ".join(problems) + ".")


def preferences(settings: Settings) -> list[Numbered]:
    """Every preference with its effective value, numbered by its place in the catalog."""
    overrides = settings.preferences
    return [
        Numbered(i, replace(p, value=overrides[p.key]) if p.key in overrides else p)
        for i, p in enumerate(PREFERENCES, start=1)
    ]


def preference(settings: Settings, preference_id: int) -> Numbered:
    for item in preferences(settings):
        if item.id == preference_id:
            return item
    raise NotFound("No such preference.", code="preference_not_found")


@dataclass(frozen=True)
class PreferenceQuery:
    search: str | None = None
    section: str | None = None
    keys: str | None = None
    ordering: str | None = None


def select_preferences(settings: Settings, query: PreferenceQuery) -> list[Numbered]:
    """The preferences a query names: `section` exactly, `keys` a comma-separated list of
    `section.name`, `search` words each found in the section or the name; ordered by
    `ordering` (`id`, `section` or `name`, `-` first for descending)."""
    items = preferences(settings)
    if query.section is not None:
        items = [i for i in items if i.preference.section == query.section]
    if query.keys is not None:
        wanted = {k.strip() for k in query.keys.split(",") if k.strip()}
        items = [i for i in items if i.preference.key in wanted]
    if query.search is not None:
        words = query.search.lower().replace(",", " ").split()
        items = [i for i in items if all(w in i.preference.key.lower() for w in words)]
    return _ordered(items, query.ordering)


def _ordered(items: list[Numbered], ordering: str | None) -> list[Numbered]:
    if ordering is None:
        return items
    field = ordering.removeprefix("-")
    if field not in ORDERINGS:
        raise InvalidInput.field(
            "ordering", "invalid", f"Order by one of {', '.join(ORDERINGS)} (prefix - to reverse)."
        )

    def sort_key(item: Numbered) -> tuple[str | int, int]:
        value = item.id if field == "id" else getattr(item.preference, field)
        return value, item.id

    return sorted(items, key=sort_key, reverse=ordering.startswith("-"))


@dataclass(frozen=True, slots=True)
class NumberedFeature:
    id: int
    feature: Feature


def select_features(name: str | None, search: str | None) -> Sequence[NumberedFeature]:
    items = [NumberedFeature(i, f) for i, f in enumerate(FEATURES, start=1)]
    if name is not None:
        items = [i for i in items if i.feature.name == name]
    if search is not None:
        words = search.lower().replace(",", " ").split()
        items = [i for i in items if all(w in i.feature.name for w in words)]
    return items
