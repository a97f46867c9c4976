"""The tag scheme of a token-classification column (#18): IOB1, IOB2 (BIO), BIOES or plain tags (parts of speech,
...), detected from the training tags sentence by sentence, or forced (--tag-scheme, a task record) and then only
checked tag by tag. Every problem is a one-line DataError naming the file and line or row.

IOB1 (CoNLL-2003): an entity starts with I-X; B-X only splits two adjacent entities of one type.
IOB2 (BIO): every entity starts with B-X. BIOES: B-X I-X … E-X, and S-X for a one-word entity.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from distilkit.errors import DataError
from distilkit.tasks.registry import TAG_SCHEMES

_SPAN_TAG = re.compile(r"([BIES])-(\S+)")
_PREFIXES = {"iob1": "BI", "iob2": "BI", "bioes": "BIES"}
FORCE_HINT = "use one scheme per column, or force one with --tag-scheme " + "|".join(TAG_SCHEMES)


def span_tag(tag: str) -> tuple[str, str] | None:
    """(prefix, type) of a B-/I-/E-/S- tag, ("O", "") for O, None for a plain tag ("NNP")."""
    if tag == "O":
        return "O", ""
    match = _SPAN_TAG.fullmatch(tag)
    return (match.group(1), match.group(2)) if match else None


def is_span_scheme(scheme: str | None) -> bool:
    return scheme in _PREFIXES


def scheme_of_labels(labels: Iterable[str]) -> str:
    """The scheme a label set can only be read in (a model's id2label): plain unless every label is O or B-/I-/E-/S-
    and a type; bioes with an E- or S- label, else iob2 (IOB1 and IOB2 decode alike: conlleval's rules)."""
    parsed = [span_tag(label) for label in labels]
    if not parsed or any(tag is None for tag in parsed):
        return "plain"
    return "bioes" if any(tag[0] in "ES" for tag in parsed) else "iob2"


class SchemeScan:
    """Evidence for the scheme, gathered sentence by sentence (a training split may be streamed): where the first
    plain tag, span tag, E-/S- tag, entity opened by I-, entity opened by B- after O, and B-/I- left unclosed
    (no E-) were seen, and how often. `scheme()` turns it into one scheme, or a DataError naming the two places
    that disagree: plain tags beside span tags, or BIOES beside IOB."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.first: dict[str, tuple[str, str]] = {}  # evidence → (tag, place)
        self.counts: dict[str, int] = {}

    def _note(self, evidence: str, tag: str, place: str) -> None:
        self.first.setdefault(evidence, (tag, place))
        self.counts[evidence] = self.counts.get(evidence, 0) + 1

    def add(self, tags: Sequence[str], place: str) -> None:
        previous, previous_type = "O", ""
        for tag in tags:
            parsed = span_tag(tag)
            if parsed is None:
                self._note("plain", tag, place)
                previous, previous_type = "O", ""
                continue
            prefix, entity_type = parsed
            if prefix != "O":
                self._note("span", tag, place)
            if prefix in "ES":
                self._note("bioes", tag, place)
            continues = previous in "BI" and previous_type == entity_type
            if prefix in "IE" and not continues:
                self._note("opens_with_i", tag, place)
            if prefix == "B" and not continues:
                self._note("opens_with_b", tag, place)
            if previous in "BI" and not (prefix in "IE" and continues):
                self._note("unclosed", f"{previous}-{previous_type}", place)
            previous, previous_type = prefix, entity_type
        if previous in "BI":
            self._note("unclosed", f"{previous}-{previous_type}", place)

    def _mixed(self, one: str, what_one: str, other: str, what_other: str) -> DataError:
        (tag, place), (other_tag, other_place) = self.first[one], self.first[other]
        return DataError(
            f"{self.name}, {place}: {tag!r} {what_one} but {other_place} has {other_tag!r} {what_other} — mixed tag "
            f"schemes: {FORCE_HINT}"
        )

    def scheme(self) -> str:
        """The detected scheme; DataError for mixed schemes."""
        seen = self.first
        if "plain" in seen and "span" in seen:
            raise self._mixed("plain", "is a plain tag", "span", "(a B-/I-/E-/S- tag)")
        if "span" not in seen:
            return "plain"
        if "bioes" in seen:
            if "opens_with_i" in seen:
                raise self._mixed("opens_with_i", "opens an entity (IOB1)", "bioes", "(BIOES)")
            if "unclosed" in seen:
                raise self._mixed("unclosed", "ends an entity without E- (IOB)", "bioes", "(BIOES)")
            return "bioes"
        # Entities opened by I- and by B- both: the majority names the scheme. conlleval reads either opening as a
        # start, so IOB1 and IOB2 decode alike — CoNLL-2003 train's IOB1 NER column has 2 stray B- openings.
        return "iob1" if self.counts.get("opens_with_i", 0) >= self.counts.get("opens_with_b", 1) else "iob2"


def check_forced(tags: Sequence[str], scheme: str, where: str) -> None:
    """Every tag fits a forced scheme's form: O or B-/I- (IOB), also E-/S- (BIOES) and a type; any tag is plain."""
    prefixes = _PREFIXES.get(scheme)
    if prefixes is None:
        return
    for tag in tags:
        parsed = span_tag(tag)
        if parsed is None or (parsed[0] != "O" and parsed[0] not in prefixes):
            forms = "O, B-X or I-X" if prefixes == "BI" else "O, B-X, I-X, E-X or S-X"
            article = "an" if scheme.startswith("i") else "a"
            raise DataError(f"{where}: {tag!r} is not {article} {scheme.upper()} tag ({forms}) — {FORCE_HINT}")


def resolve_scheme(sentences: Iterable[tuple[Sequence[str], str]], forced: str | None, name: str) -> str:
    """The scheme of (tags, place) pairs: `forced` after checking every tag's form, else detected (SchemeScan)."""
    if forced is not None:
        for tags, place in sentences:
            check_forced(tags, forced, f"{name}, {place}")
        return forced
    scan = SchemeScan(name)
    for tags, place in sentences:
        scan.add(tags, place)
    return scan.scheme()
