"""The EPCIS 2.0 SimpleEventQuery parameters GET /epcis/events answers (EPCIS 2.0 §8.2.7,
REST bindings: list values pipe-delimited, `perPage` with a `nextPageToken` carried in the
`Link: <…>; rel="next"` header), parsed and matched against cloud/contracts/epcis.py's
events. Pure.

    eventType       ObjectEvent|TransformationEvent|...       the event's type
    EQ_bizStep      bare CBV terms or their URN / Web URI forms the event's bizStep
    EQ_disposition  likewise                                   the event's disposition
    EQ_bizLocation  URIs (a participant's DID here)            the event's bizLocation id
    MATCH_epc       GS1 Digital Link URIs                      what an ObjectEvent names:
                                                               its packs (epcList: a pack
                                                               URI /01/{gtin}/21/{serial})
                                                               and its lots (quantityList's
                                                               epcClass; a pack event's lot)
    MATCH_anyEPC    likewise                                   any lot or serial an event
                                                               names, a TransformationEvent's
                                                               input and output lots too
    MATCH_epcClass  lot URIs                                   the lots of quantity lists
    GE_eventTime    RFC 3339 date-time with an offset          eventTime >= it
    LT_eventTime    likewise                                   eventTime < it
    perPage         1 to MAX_PER_PAGE (default 30)             events per page
    nextPageToken   the token of a previous page's next link  the page after it

Any other parameter, a repeated one, or a malformed value is a QueryError naming it (the
route answers 400, epcisException:QueryParameterException).
"""

from __future__ import annotations

import base64
import binascii
import datetime
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from cloud.contracts.epcis import Epc, EpcError, Event, SplitCheck, cbv_term, match_uri
from gateway.refusal import Refused

DEFAULT_PER_PAGE: Final = 30  # the REST bindings' default
MAX_PER_PAGE: Final = 1000
MAX_VALUES: Final = 100  # values of one list parameter
MAX_VALUE: Final = 512  # characters of one value
LISTS: Final = (
    "eventType",
    "EQ_bizStep",
    "EQ_disposition",
    "EQ_bizLocation",
    "MATCH_epc",
    "MATCH_anyEPC",
    "MATCH_epcClass",
)
PARAMETERS: Final = (*LISTS, "GE_eventTime", "LT_eventTime", "perPage", "nextPageToken")
EVENT_TYPES: Final = (
    "ObjectEvent",
    "AggregationEvent",
    "TransactionEvent",
    "TransformationEvent",
    "AssociationEvent",
)


class QueryError(Refused):
    """A query parameter is unknown, repeated or malformed: `reason` names it (400)."""


@dataclass(frozen=True)
class Cursor:
    """Where a page starts: after the event of this (time, eventID)."""

    time: int
    event_id: str

    def token(self) -> str:
        """The opaque nextPageToken naming this cursor."""
        raw = f"{self.time}.{self.event_id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def parse(cls, token: str) -> Cursor:
        """Read a token made by token(). Raises QueryError "nextPageToken"."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            time, _, event_id = raw.partition(".")
            digits = time.isascii() and time.isdigit() and len(time) <= 16
            if not digits or not event_id.startswith("urn:uuid:"):
                raise ValueError
        except (ValueError, binascii.Error):
            raise QueryError("nextPageToken", "not a token this server gave") from None
        return cls(int(time), event_id)


@dataclass(frozen=True)
class Query:
    """A parsed SimpleEventQuery (module docstring); None: the parameter was not given."""

    event_types: frozenset[str] | None = None
    biz_steps: frozenset[str] | None = None
    dispositions: frozenset[str] | None = None
    biz_locations: frozenset[str] | None = None
    epc: tuple[Epc, ...] | None = None
    any_epc: tuple[Epc, ...] | None = None
    epc_class: tuple[Epc, ...] | None = None
    ge_time: int | None = None
    lt_time: int | None = None
    per_page: int = DEFAULT_PER_PAGE
    after: Cursor | None = None

    def lots(
        self, lots_of: Callable[[str, str], Iterable[tuple[str, str]]] = lambda g, s: ()
    ) -> set[tuple[str, str]] | None:
        """The lots the MATCH_ parameters name (the only lots whose events can match), or
        None when none is given (every lot's can). A serial names the lots
        `lots_of(gtin, serial)` says it has been in (its registration's lot and the lots
        split from it: the caller's index)."""
        named = [e for e in (self.epc, self.any_epc, self.epc_class) if e is not None]
        if not named:
            return None
        found = []
        for epcs in named:
            lots = {(e.gtin, e.lot) for e in epcs if e.lot is not None}
            for e in epcs:
                if e.serial is not None:
                    lots.update(lots_of(e.gtin, e.serial))
            found.append(lots)
        return set.intersection(*found)

    def matches(self, event: Event) -> bool:
        """Whether `event` meets every parameter given (the page cursor aside)."""
        body = event.body
        if self.event_types is not None and body["type"] not in self.event_types:
            return False
        if self.biz_steps is not None and body.get("bizStep") not in self.biz_steps:
            return False
        if self.dispositions is not None and body.get("disposition") not in self.dispositions:
            return False
        where = body.get("bizLocation", {}).get("id")
        if self.biz_locations is not None and where not in self.biz_locations:
            return False
        if self.ge_time is not None and event.time < self.ge_time:
            return False
        if self.lt_time is not None and event.time >= self.lt_time:
            return False
        object_event = body["type"] != "TransformationEvent"
        if self.epc is not None and not (object_event and _names(event, self.epc)):
            return False
        if self.any_epc is not None and not _names(event, self.any_epc):
            return False
        return self.epc_class is None or _names(event, self.epc_class, serials=False)


def _names(event: Event, epcs: Sequence[Epc], serials: bool = True) -> bool:
    for e in epcs:
        if e.serial is None and e.lot is not None and (e.gtin, e.lot) in event.lots:
            return True
        if serials and e.serial is not None and (e.gtin, e.serial) in event.serials:
            return True
    return False


def page(events: Sequence[Event], query: Query) -> tuple[list[Event], Cursor | None]:
    """The page of `events` (in (time, eventID) order) the query asks for, and the cursor
    of the next page (None: this is the last)."""
    after = query.after
    matching = [
        e
        for e in events
        if (after is None or (e.time, e.event_id) > (after.time, after.event_id))
        and query.matches(e)
    ]
    shown = matching[: query.per_page]
    if len(matching) <= query.per_page:
        return shown, None
    last = shown[-1]
    return shown, Cursor(last.time, last.event_id)


def parse(params: Mapping[str, Sequence[str]], urns: SplitCheck | None = None) -> Query:
    """Parse the query string (each name with every value it was given); EPC URNs in the
    MATCH_ parameters where `urns` accepts their split (epcis.match_uri). Raises
    QueryError naming the first unknown, repeated or malformed parameter."""
    for name, values in params.items():
        if name not in PARAMETERS:
            shown = name[:40] or "query"  # `?=x` names no parameter: the query string then
            raise QueryError(shown, f"not a query parameter this server answers ({_known()})")
        if len(values) != 1:
            raise QueryError(name, "given more than once; lists are pipe-delimited (a|b)")
        if len(values[0]) > MAX_VALUES * MAX_VALUE:
            raise QueryError(name, "too long")
    one = {name: values[0] for name, values in params.items()}
    lists = {name: _list(name, one[name]) for name in LISTS if name in one}
    for value in lists.get("eventType") or []:
        if value not in EVENT_TYPES:
            want = ", ".join(EVENT_TYPES)
            raise QueryError("eventType", f"got {value[:40]!r}, want one of {want}")
    epcs = {
        name: _epcs(name, values, urns) for name, values in lists.items() if name.startswith("M")
    }
    if "MATCH_epcClass" in epcs and any(e.lot is None for e in epcs["MATCH_epcClass"]):
        raise QueryError("MATCH_epcClass", "want lot URIs (/01/{gtin}/10/{lot}), not serials")
    ge, lt = (
        _time("GE_eventTime", one.get("GE_eventTime")),
        _time("LT_eventTime", one.get("LT_eventTime")),
    )
    return Query(
        event_types=_set(lists.get("eventType")),
        biz_steps=_terms("bizStep", lists.get("EQ_bizStep")),
        dispositions=_terms("disposition", lists.get("EQ_disposition")),
        biz_locations=_set(lists.get("EQ_bizLocation")),
        epc=epcs.get("MATCH_epc"),
        any_epc=epcs.get("MATCH_anyEPC"),
        epc_class=epcs.get("MATCH_epcClass"),
        ge_time=ge,
        lt_time=lt,
        per_page=_per_page(one.get("perPage")),
        after=None if "nextPageToken" not in one else Cursor.parse(one["nextPageToken"]),
    )


def _known() -> str:
    return ", ".join(PARAMETERS)


def _list(name: str, raw: str) -> list[str]:
    values = raw.split("|")
    if len(values) > MAX_VALUES:
        raise QueryError(name, f"got {len(values)} values, want at most {MAX_VALUES}")
    for value in values:
        if not value or len(value) > MAX_VALUE or not value.isprintable() or " " in value:
            raise QueryError(name, f"got {value[:40]!r}, want 1 to {MAX_VALUE} characters")
    return values


def _set(values: list[str] | None) -> frozenset[str] | None:
    return None if values is None else frozenset(values)


def _terms(kind: str, values: list[str] | None) -> frozenset[str] | None:
    return None if values is None else frozenset(cbv_term(kind, v) for v in values)


def _epcs(name: str, values: list[str], urns: SplitCheck | None) -> tuple[Epc, ...]:
    try:
        return tuple(match_uri(v, urns) for v in values)
    except EpcError as e:
        raise QueryError(name, str(e)) from None


def _time(name: str, raw: str | None) -> int | None:
    """Unix ms of an RFC 3339 date-time with an offset ("Z" or ±hh:mm)."""
    if raw is None:
        return None
    try:
        at = datetime.datetime.fromisoformat(raw)
    except ValueError:
        raise QueryError(name, f"got {raw[:40]!r}, want an RFC 3339 date-time") from None
    if at.tzinfo is None:
        raise QueryError(name, f"got {raw[:40]!r}: no time zone offset, want one (Z, +hh:mm)")
    try:
        return int(at.timestamp() * 1000)
    except (OverflowError, ValueError, OSError):
        raise QueryError(name, f"got {raw[:40]!r}, out of range") from None


def _per_page(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_PER_PAGE
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 6 or not 1 <= int(raw) <= MAX_PER_PAGE:
        raise QueryError("perPage", f"got {raw[:20]!r}, want an integer 1 to {MAX_PER_PAGE}")
    return int(raw)
