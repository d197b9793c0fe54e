"""A manufacturer's GS1 company prefixes (cloud/contracts/gs1_prefixes.py): declared by a
signed `lots gs1-prefix`, public, prefix-free across manufacturers, every refusal leaving
nothing, replay reaching the same roots; the split of a URN checked against them."""

from __future__ import annotations

from typing import Any

import pytest

from cloud.contracts import engine, gs1_prefixes, participants
from tests.cloud.contracts.world import GTIN, REGULATOR, World, supply_chain


@pytest.fixture
def world() -> World:
    chain = supply_chain()
    chain.lots("M", "gs1-prefix", {"prefixes": ["9506000", "40123456"]})
    return chain


def test_a_manufacturer_declares_its_prefixes_and_a_gtin_finds_its_own(world: World) -> None:
    record = world.state.get(gs1_prefixes.GS1_PREFIX, "9506000")
    m = participants.identify(world.state, world.parties["M"].did).id
    assert record is not None and record["manufacturer"] == m
    assert gs1_prefixes.prefix_of(world.state, GTIN) == "9506000"
    assert gs1_prefixes.prefix_of(world.state, "00614141123452") is None
    assert gs1_prefixes.split_refused(world.state, "9506000", GTIN) is None
    wrong = gs1_prefixes.split_refused(world.state, "950600", GTIN)
    assert wrong is not None and "registered company prefix 9506000 (7 digits)" in wrong
    unknown = gs1_prefixes.split_refused(world.state, "0614141", "00614141123452")
    assert unknown is not None and "0614141 is not registered" in unknown
    before = len(world.roots)
    world.lots("M", "gs1-prefix", {"prefixes": ["9506000"]})  # its own again: no change
    assert world.roots[-1] == world.roots[before - 1]
    fresh = engine.State([REGULATOR.xonly])
    assert engine.replay(world.engine, world.log, [REGULATOR.xonly], fresh) == world.roots


@pytest.mark.parametrize(
    ("who", "args", "want"),
    [
        ("D", {"prefixes": ["0614141"]}, (403, "access")),  # manufacturer identity: no
        ("regulator", {"prefixes": ["0614141"]}, (403, "access")),
        ("M", {"prefixes": "0614141"}, (400, "args.prefixes")),
        ("M", {"prefixes": []}, (400, "args.prefixes")),
        ("M", {"prefixes": ["0614141"] * 21}, (400, "args.prefixes")),
        ("M", {"prefixes": ["06141"]}, (400, "args.prefixes[0]")),  # 5 digits
        ("M", {"prefixes": ["0614141", "0614141234567"]}, (400, "args.prefixes[1]")),  # 13
        ("M", {"prefixes": ["0614141", "06141x1"]}, (400, "args.prefixes[1]")),
        ("M", {"prefixes": ["0614141", 614141]}, (400, "args.prefixes[1]")),
        ("M", {"prefixes": ["0614141", "0614141"]}, (400, "args.prefixes[1]")),  # repeated
        ("M", {"prefixes": ["0614141"], "extra": 1}, (400, "args")),
        ("M", {"prefixes": ["0614141", "06141412"]}, (409, "prefix")),  # overlap
        ("M", {"prefixes": ["95060001"]}, (409, "prefix")),  # starts with a registered one
        ("M2", {"prefixes": ["9506000"]}, (409, "prefix")),  # another manufacturer's
    ],
)
def test_refusals_name_the_first_bad_prefix_and_leave_nothing(
    world: World, who: str, args: dict[str, Any], want: tuple[int, str]
) -> None:
    error = world.refused(who, "lots", "gs1-prefix", args)
    assert (error.status, error.reason) == want
