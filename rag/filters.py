"""Which documents a question may draw on: a filter over what each document carries (its
collection, source, file type, title, modification time and tags), decided per document and
the same on every store. Written as JSON on the API and as flags on the command line:

    {"collection": "manuals"}                      equality
    {"collection": ["manuals", "notes"]}           any of (`in`)
    {"source": {"prefix": "manuals/pumps/"}}       a path prefix
    {"modified": {"gte": "2026-01-01", "lt": 1767225600}}   a time range (ISO date or epoch s)
    {"tags": {"team": "infra"}}                    a tag's value (a list: any of)

    --collection manuals --where file_type=pdf,docx --where source^=manuals/ --where tag.team=infra
    --where "modified>=2026-01-01"

Fields combine with AND; the values of one field with OR.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rag.catalog import FileEntry
from rag.errors import UsageError

FIELDS = ("collection", "source", "file_type", "title")  # matched by equality or `in`
MAX_VALUES = 1000


@dataclass(frozen=True)
class Filter:
    equals: tuple[tuple[str, frozenset[str]], ...] = ()  # a field ("tag.KEY" too), any of these
    prefix: str | None = None  # the source starts with it
    modified_from: float | None = None  # modified >= this (seconds since the epoch)
    modified_to: float | None = None  # modified < this

    def admits(self, source: str, entry: FileEntry) -> bool:
        if self.prefix is not None and not source.startswith(self.prefix):
            return False
        if self.modified_from is not None and not entry.modified >= self.modified_from:
            return False
        if self.modified_to is not None and not entry.modified < self.modified_to:
            return False
        return all(value_of(name, source, entry) in allowed for name, allowed in self.equals)

    def sources(self, files: Mapping[str, FileEntry]) -> set[str]:
        """The documents of `files` it admits."""
        return {source for source, entry in files.items() if self.admits(source, entry)}

    @classmethod
    def from_json(cls, raw: Any) -> Filter | None:
        """The API's `filter` object (None or {}: no filter); `UsageError` saying what is wrong."""
        if raw is None or raw == {}:
            return None
        if not isinstance(raw, dict):
            raise UsageError('filter: an object, e.g. {"collection": "manuals"}')
        equals: list[tuple[str, frozenset[str]]] = []
        prefix = start = end = None
        for name, value in raw.items():
            if name in FIELDS and isinstance(value, dict) and name == "source":
                prefix = _prefix(value)
            elif name in FIELDS:
                equals.append((name, _values(name, value)))
            elif name == "tags" and isinstance(value, dict):
                equals += [(f"tag.{key}", _values(f"tags.{key}", v)) for key, v in value.items()]
            elif name == "modified" and isinstance(value, dict):
                start, end = _range(value)
            else:
                known = ", ".join([*FIELDS, "tags", "modified"])
                raise UsageError(f"filter: unknown or malformed field {name!r} (fields: {known})")
        return cls(tuple(sorted(equals)), prefix, start, end)

    @classmethod
    def from_args(cls, collections: Sequence[str], where: Sequence[str]) -> Filter | None:
        """`--collection NAME...` and `--where key=value...` as a filter."""
        return cls.from_json(json_of_args(collections, where))


def json_of_args(collections: Sequence[str], where: Sequence[str]) -> dict[str, Any]:
    """`--collection` and `--where` flags in the JSON form (what a client sends a server)."""
    raw: dict[str, Any] = {}
    if collections:
        raw["collection"] = list(collections)
    for condition in where:
        raw.update(_condition(condition, raw))
    return raw


def value_of(name: str, source: str, entry: FileEntry) -> str | None:
    if name == "source":
        return source
    if name.startswith("tag."):
        return entry.tags.get(name[4:])
    return str(getattr(entry, name))


def _values(name: str, value: Any) -> frozenset[str]:
    values = value if isinstance(value, list) else [value]
    if not values or len(values) > MAX_VALUES or not all(isinstance(v, str) for v in values):
        raise UsageError(f"filter {name}: a string or a list of 1-{MAX_VALUES} strings")
    return frozenset(values)


def _prefix(value: dict[str, Any]) -> str:
    if set(value) != {"prefix"} or not isinstance(value["prefix"], str) or not value["prefix"]:
        raise UsageError('filter source: a name or {"prefix": "folder/"}')
    return str(value["prefix"])


def _range(value: dict[str, Any]) -> tuple[float | None, float | None]:
    if not value or set(value) - {"gte", "lt"}:
        raise UsageError('filter modified: {"gte": TIME, "lt": TIME} (either or both)')
    start, end = (_time(value[k]) if k in value else None for k in ("gte", "lt"))
    return start, end


def _time(value: Any) -> float:
    """Seconds since the epoch from a number or an ISO 8601 date/time (UTC unless it says)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            if math.isfinite(value):
                return float(value)
        except OverflowError:  # an integer past any float
            pass
    if isinstance(value, str):
        try:
            seconds = float(value)  # epoch seconds written as text (a --where flag)
        except ValueError:
            pass
        else:
            if math.isfinite(seconds):
                return seconds
        try:
            moment = dt.datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).timestamp()
    raise UsageError(f"filter modified: {value!r} is not a time (2026-01-31, or epoch seconds)")


CONDITION = re.compile(r"(?P<key>[A-Za-z_][\w.:-]*)\s*(?P<op>\^=|>=|<|=)\s*(?P<value>.*)")


def _condition(condition: str, raw: Mapping[str, Any]) -> dict[str, Any]:
    """One `--where` as a piece of the JSON form."""
    found = CONDITION.fullmatch(condition.strip())
    if found is None:
        raise UsageError(
            f"--where {condition!r}: write key=value, source^=prefix or modified>=TIME"
        )
    key, op, value = found["key"], found["op"], found["value"].strip()
    if key == "modified" and op in {">=", "<"}:
        bounds = dict(raw.get("modified", {}))
        bounds["gte" if op == ">=" else "lt"] = value
        return {"modified": bounds}
    if key == "source" and op == "^=":
        return {"source": {"prefix": value}}
    if op != "=":
        raise UsageError(f"--where {condition!r}: {op} applies to modified or source only")
    values = [v.strip() for v in value.split(",")]
    if key.startswith("tag."):
        return {"tags": {**raw.get("tags", {}), key[4:]: values}}
    return {key: values}


def describe(found: Filter | None) -> str:
    """One line for messages: `collection in {manuals}, source^=docs/`."""
    if found is None:
        return "no filter"
    parts: list[str] = [f"{n} in {{{', '.join(sorted(v))}}}" for n, v in found.equals]
    if found.prefix is not None:
        parts.append(f"source^={found.prefix}")
    for label, moment in (("modified>=", found.modified_from), ("modified<", found.modified_to)):
        if moment is not None:
            parts.append(label + dt.datetime.fromtimestamp(moment, dt.UTC).isoformat())
    return ", ".join(parts)
