"""`pharmasync stock [GTIN]` and `pharmasync stock minimum GTIN N`, run as a user runs them
against a real `pharmasync cloud serve` (the `user` fixture of test_lots_cli.py: a lot of
100 with 60 shipped to and received by the wholesaler): the regulator sets a minimum above
the stock and its feed shows the shortage; each reader prints what the matrix allows;
refusals exit 1 with the ledger's reason, a malformed command line 2."""

from __future__ import annotations

import json

from tests.cloud.test_lots_cli import GTIN, User, user  # noqa: F401 (the fixture)


async def test_a_minimum_above_the_stock_alerts_the_regulator(user: User) -> None:  # noqa: F811
    out = await user.ok("stock", "minimum", GTIN, "70", "--regulator-key", "regulator.key")
    assert "lots/stock-minimum" in out
    out = await user.ok("feed", "--key", "regulator.key")
    assert "shortage" not in out  # stock 100 >= 70
    await user.ok("stock", "minimum", GTIN, "150", "--regulator-key", "regulator.key")
    out = await user.ok("feed", "--key", "regulator.key", "--json")
    (alert,) = [json.loads(line) for line in out.splitlines() if '"shortage"' in line]
    assert alert["event"] == {"type": "shortage", "gtin": GTIN, "stock": 100, "minimum": 150}
    out = await user.ok("stock", "--key", "regulator.key")
    assert f"{GTIN}  minimum 150 (BELOW)" in out
    assert "manufacturer  40 released" in out and "distributor   60 released" in out
    assert "did:key" not in out
    out = await user.ok("stock", GTIN, "--key", "wholesaler.key", "--json")
    answer = json.loads(out)
    assert answer["own"]["on_hand"]["released"] == 60 and "shortage" not in answer


async def test_refusals_exit_with_the_reason(user: User) -> None:  # noqa: F811
    code, _, err = await user.run("stock", "minimum", GTIN, "5", "--regulator-key", "maker.key")
    assert code == 1 and "HTTP 403: role" in err
    code, _, err = await user.run("stock", "minimum", GTIN, "0", "--regulator-key", "regulator.key")
    assert code == 1 and "HTTP 409: no minimum" in err
    code, _, err = await user.run("stock", "09506000134353", "--key", "maker.key")
    assert code == 2 and "check digit" in err
    code, _, err = await user.run("stock", "minimum", GTIN, "-1", "--regulator-key", "x")
    assert code == 2
    code, _, err = await user.run("stock", GTIN)
    assert code == 2 and "--key" in err
