"""Routing by tags (`dicom.rules`): the first rule an instance matches names its task type and
options; none matching leaves the instance unanalysed. Pure: a data set's tags in, a Route out.

A rule matches when every `match` entry has a value (any of a multi-valued tag's values) that one
of its patterns matches, and no `exclude` entry does. Patterns are exact or glob, or `re:` and a
regular expression matched against the whole value; case-insensitive, values stripped. A tag that
is absent or empty matches nothing.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format
from pydicom.datadict import tag_for_keyword
from pydicom.multival import MultiValue

from dentalai.config import DicomRule
from dentalai.v1 import task_pb2


@dataclass(frozen=True)
class Route:
    rule: str
    task_type: str
    options: task_pb2.AnalysisOptions


def _pattern(text: str) -> re.Pattern[str]:
    source = text[3:] if text.startswith("re:") else fnmatch.translate(text.strip())
    return re.compile(source, re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class _Matcher:
    keyword: str
    patterns: tuple[re.Pattern[str], ...]

    def __call__(self, tags: Any) -> bool:
        return any(p.fullmatch(v) for v in _values(tags, self.keyword) for p in self.patterns)


def _values(tags: Any, keyword: str) -> list[str]:
    """The tag's values as stripped text; none when absent or empty."""
    value = tags.get(keyword)
    if value is None:
        return []
    items = value if isinstance(value, (list, tuple, MultiValue)) else [value]
    return [text for text in (str(item).strip() for item in items) if text]


@dataclass(frozen=True)
class _Rule:
    route: Route
    match: tuple[_Matcher, ...]
    exclude: tuple[_Matcher, ...]

    def matches(self, tags: Any) -> bool:
        return all(m(tags) for m in self.match) and not any(m(tags) for m in self.exclude)


class Router:
    """`dicom.rules` compiled once; `route(tags)` with a pydicom Dataset (or any mapping of
    keyword -> value). Raises ValueError naming the rule for an unknown keyword, a task type not in
    `task_types` or options that are not AnalysisOptions."""

    def __init__(self, rules: Iterable[DicomRule], task_types: Iterable[str]) -> None:
        known = set(task_types)
        self.rules = tuple(_compile(rule, known) for rule in rules)

    def route(self, tags: Any) -> Route | None:
        return next((rule.route for rule in self.rules if rule.matches(tags)), None)


def _compile(rule: DicomRule, task_types: set[str]) -> _Rule:
    where = f"dicom.rules {rule.name!r}"
    if rule.task_type not in task_types:
        known = ", ".join(sorted(task_types))
        raise ValueError(f"{where}: task_type {rule.task_type!r} is not one of {known}")
    for keyword in [*rule.match, *rule.exclude]:
        if tag_for_keyword(keyword) is None:
            raise ValueError(f"{where}: {keyword!r} is not a DICOM keyword")
    try:
        options = json_format.ParseDict(rule.options, task_pb2.AnalysisOptions())
    except json_format.ParseError as exc:
        raise ValueError(f"{where}: options: {exc}") from None

    def matchers(entries: dict[str, list[str]]) -> tuple[_Matcher, ...]:
        return tuple(_Matcher(k, tuple(_pattern(p) for p in v)) for k, v in entries.items())

    return _Rule(Route(rule.name, rule.task_type, options), matchers(rule.match), matchers(rule.exclude))
