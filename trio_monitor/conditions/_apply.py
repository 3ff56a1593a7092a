"""Checking a probe's result against its target's conditions (on the hot path)."""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from .._errors import ErrorKind
from .._records import ConditionResult, ProbeResult
from ._compile import Condition, Scope


def apply(
    result: ProbeResult, conditions: tuple[Condition, ...], facts: Mapping[str, object]
) -> ProbeResult:
    """`result` with every condition's outcome in `conditions`.

    A condition that fails turns an ok result into a failed one (error `condition`,
    error_detail the failed conditions with their actual values). A result that failed
    because it got no connection becomes ok when every condition passes and one of them
    asks for exactly that (`[CONNECTED] == false`: a port that must be closed). Without
    conditions, `result` itself comes back: nothing is allocated.
    """
    if not conditions:
        return result
    scope = Scope(facts)
    rows = []
    failed = []
    for condition in conditions:
        ok, actual, detail = condition.check(scope)
        rows.append(ConditionResult(condition.text, ok, actual))
        if not ok:
            failed.append(detail)
    listed = tuple(rows)
    if failed and result.ok:
        return attrs.evolve(
            result,
            ok=False,
            slow=False,
            error=ErrorKind.CONDITION,
            error_detail="; ".join(failed),
            conditions=listed,
        )
    if not failed and _expected_failure(result, conditions, facts):
        return attrs.evolve(result, ok=True, error=None, error_detail=None, conditions=listed)
    return attrs.evolve(result, conditions=listed)


def _expected_failure(
    result: ProbeResult, conditions: tuple[Condition, ...], facts: Mapping[str, object]
) -> bool:
    """The result failed for want of a connection, and a condition asked for none."""
    return (
        not result.ok
        and facts.get("CONNECTED") is False
        and any(c.expects_no_connection for c in conditions)
    )
