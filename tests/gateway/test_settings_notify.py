"""The [notify] and [[escalation]] settings: a site's example loads, every mistake is named."""

from __future__ import annotations

from typing import Any

import pytest

from gateway import settings

HOOK = "https://hooks.example.org/on-call"
KEY = "ab" * 32


def load(notify: dict[str, Any], levels: list[Any] | None = None) -> settings.Settings:
    raw: dict[str, Any] = {"gateway": {"site": "w1"}, "notify": notify}
    if levels is not None:
        raw["escalation"] = levels
    return settings.from_dict(raw)


def test_a_sites_escalation_list_loads() -> None:
    s = load(
        {
            "smtp_host": "smtp.example.org",
            "smtp_port": 587,
            "smtp_starttls": True,
            "repeat_every_s": 600,
            "ack_keys": [KEY],
            "targets": {"on-call": HOOK, "qa": "mailto:qa@example.org"},
        },
        [{"after_s": 0, "notify": ["on-call", "qa"]}, {"after_s": 900, "notify": ["qa"]}],
    )
    n = s.notify
    assert n.smtp_port == 587 and n.smtp_starttls and n.repeat_every_s == 600.0
    assert n.ack_keys == (bytes.fromhex(KEY),)
    assert [(lv.after_s, lv.notify) for lv in n.levels] == [
        (0.0, ("on-call", "qa")),
        (900.0, ("qa",)),
    ]
    assert settings.from_dict({"gateway": {"site": "w1"}}).notify == settings.NotifySettings()


@pytest.mark.parametrize(
    ("notify", "levels", "message"),
    [
        ({"colour": 1}, None, "[notify] colour: unknown option"),
        ({"smtp_port": 0}, None, "[notify] smtp_port: got 0, want 1..65535"),
        ({"smtp_starttls": "yes"}, None, "[notify] smtp_starttls: got 'yes', want bool"),
        ({"tick_s": 0}, None, "[notify] tick_s: got 0"),
        ({"retry_min_s": 60, "retry_max_s": 30}, None, "retry_max_s: want >= retry_min_s"),
        ({"targets": {"x": "ftp://h"}}, None, "[notify.targets] x: got 'ftp://h', want https"),
        ({"targets": {"x": "mailto:a@b"}}, None, "an e-mail target needs smtp_host"),
        ({"targets": {"x": "mailto:nobody"}}, None, "[notify.targets] x: got 'mailto:nobody'"),
        ({"targets": []}, None, "[notify.targets]: want a table"),
        ({"ack_keys": "ab"}, None, "[notify] ack_keys: got 'ab', want a list"),
        ({"ack_keys": ["zz" * 32]}, None, "ack_keys: got 'zz"),
        ({"ack_keys": ["ab" * 31]}, None, "want 64 hex characters"),
        ({"targets": {"x": HOOK}}, {"after_s": 0}, "[[escalation]]: want an array of tables"),
        ({"targets": {"x": HOOK}}, [{"after_s": 0}], "#1: want after_s = seconds and notify"),
        ({"targets": {"x": HOOK}}, [{"after_s": 0, "notify": []}], "#1 notify: got []"),
        ({"targets": {"x": HOOK}}, [{"after_s": 0, "notify": ["y"]}], "['y'] not in [notify"),
        (
            {"targets": {"x": HOOK}},
            [{"after_s": 60, "notify": ["x"]}, {"after_s": 60, "notify": ["x"]}],
            "#2 after_s: got 60, want a number > 60",
        ),
        ({"targets": {"x": HOOK}}, [{"after_s": -1, "notify": ["x"]}], "#1 after_s: got -1"),
    ],
)
def test_mistakes_are_named(notify: dict[str, Any], levels: Any, message: str) -> None:
    with pytest.raises(settings.SettingsError) as e:
        load(notify, levels)
    assert message in str(e.value)
