"""Hypothesis strategies for GS1 values, shared by the element-string and Digital Link tests:
values of character set 82 and GTIN-14s with a right check digit."""

from __future__ import annotations

from hypothesis import strategies as st

from cloud.contracts import gs1

# 1..20 characters of set 82: a lot (AI 10), serial (AI 21) or CPV (AI 22).
set82 = st.text(alphabet=sorted(gs1.CSET82), min_size=1, max_size=20)


@st.composite
def gtins(draw: st.DrawFn) -> str:
    """A GTIN-14: 13 random digits and their GS1 check digit."""
    body = draw(st.text(alphabet="0123456789", min_size=13, max_size=13))
    return body + str(gs1.check_digit(body))
