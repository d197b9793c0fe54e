"""Reading a transaction's arguments: each check returns the value or raises Invalid (400)
naming the argument ("args.quantity") and saying got/want. Shared by every contract."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final, TypeVar

from cloud.contracts import didkey
from cloud.contracts.engine import Invalid
from gateway.jcs import MAX_SAFE_INTEGER
from gateway.refusal import int_field

T = TypeVar("T")
# Identifiers chosen by participants (shipment ids, order references, licence numbers):
# printable ASCII without spaces, so they show and compare unambiguously.
_IDENT: Final = re.compile("[!-~]{1,64}")


def exact(args: Mapping[str, Any], required: Iterable[str], optional: Iterable[str] = ()) -> None:
    """Require `args` to hold every `required` member and nothing beyond `optional`. Raises
    Invalid "args" naming what is missing and what is extra."""
    need, may = set(required), set(optional)
    missing, extra = sorted(need - args.keys()), sorted(args.keys() - need - may)
    if missing or extra:
        raise Invalid("args", f"missing {missing}, extra {extra!r:.200}; want {sorted(need | may)}")


def integer(args: Mapping[str, Any], name: str, minimum: int = 1) -> int:
    """Return args[name], an integer from `minimum` to 2**53 - 1. Raises Invalid."""
    return int_field(args[name], f"args.{name}", minimum, MAX_SAFE_INTEGER, Invalid)


def text(args: Mapping[str, Any], name: str, maximum: int = 200) -> str:
    """Return args[name], a string of 1 to `maximum` characters. Raises Invalid."""
    value = args[name]
    if type(value) is not str or not 1 <= len(value) <= maximum:
        raise Invalid(f"args.{name}", f"got {str(value)[:40]!r}, want 1 to {maximum} characters")
    return value


def ident(args: Mapping[str, Any], name: str) -> str:
    """Return args[name], an identifier: 1 to 64 printable ASCII characters, no spaces.
    Raises Invalid."""
    value = args[name]
    if type(value) is not str or not _IDENT.fullmatch(value):
        raise Invalid(f"args.{name}", f"got {str(value)[:70]!r}, want 1 to 64 of ASCII ! to ~")
    return value


def choice(args: Mapping[str, Any], name: str, allowed: Iterable[str]) -> str:
    """Return args[name] if it is one of `allowed`. Raises Invalid."""
    options = sorted(allowed)
    value = args[name]
    if type(value) is not str or value not in options:
        raise Invalid(f"args.{name}", f"got {str(value)[:40]!r}, want one of {options}")
    return value


def did(args: Mapping[str, Any], name: str) -> tuple[str, bytes]:
    """Return args[name], a secp256k1 did:key, and its x-only key. Raises Invalid."""
    value = args[name]
    try:
        return value, didkey.to_xonly(value)
    except didkey.DidKeyError as e:
        raise Invalid(f"args.{name}", e.detail) from None


def checked(args: Mapping[str, Any], name: str, check: Callable[[object], T]) -> T:
    """Return check(args[name]); a ValueError it raises becomes Invalid naming the argument."""
    try:
        return check(args[name])
    except ValueError as e:
        raise Invalid(f"args.{name}", str(e)) from None


@contextmanager
def within(name: str) -> Iterator[None]:
    """Check a nested object's members: an Invalid raised inside, naming "args" or
    "args.x", is raised again naming "args.<name>" or "args.<name>.x"."""
    try:
        yield
    except Invalid as e:
        raise Invalid(f"args.{name}{e.reason[4:]}", e.detail) from None
