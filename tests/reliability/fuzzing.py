"""Fuzz a served OpenAPI document with schemathesis: every operation, valid and invalid input,
every response checked against the document.

A 5xx is a failure of the framework unless it is one the caller names in ``expected`` (a
``(status, error code)`` pair): a handler's own exception that its domain does not map to a
4xx, or the 504 of a deadline the client chose itself (``expire_time``).
"""

from __future__ import annotations

import collections
import warnings
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import hypothesis.errors
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

#: What every response is checked for (a 5xx is judged separately, see :func:`fuzz`).
CHECKS = [
    status_code_conformance, content_type_conformance, response_headers_conformance,
    response_schema_conformance, negative_data_rejection,
]


@dataclass
class Report:
    cases: int = 0
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    #: (status, error code) -> count, of the 5xx named in ``expected``
    expected: collections.Counter[tuple[int, str]] = field(default_factory=collections.Counter)
    server_errors: list[str] = field(default_factory=list)
    nonconforming: list[str] = field(default_factory=list)

    def summary(self) -> str:
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(self.statuses.items()))
        expected = ", ".join(f"{s} {code}: {n}" for (s, code), n in sorted(self.expected.items())) or "none"
        return (
            f"{self.cases} cases; statuses {statuses}; framework 5xx: {len(self.server_errors)}; "
            f"nonconforming: {len(self.nonconforming)}; handler/client 5xx: {expected}"
        )


def fuzz(
    base_url: str, cases: int, expected: frozenset[tuple[int, str]] = frozenset(), *, seed: int | None = None
) -> Report:
    """Run ``cases`` generated requests (half valid, half invalid) against ``base_url``;
    the same ones each time unless a ``seed`` picks others."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    strategy = st.one_of(
        schema.as_strategy(generation_mode=GenerationMode.POSITIVE),
        schema.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    )
    report = Report()
    session = requests.Session()

    @settings(
        max_examples=cases, deadline=None, database=None, derandomize=seed is None,
        phases=[Phase.generate], suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        response = case.call(base_url=base_url, session=session, timeout=10)
        report.cases += 1
        report.statuses[response.status_code] += 1
        where = f"{case.method} {case.formatted_path}"
        if response.status_code >= 500:
            code = _error_code(response)
            if (response.status_code, code) in expected:
                report.expected[(response.status_code, code)] += 1
            else:
                report.server_errors.append(f"{where}: {response.status_code} {response.text[:300]}")
            return
        try:
            case.validate_response(response, checks=CHECKS, excluded_checks=[not_a_server_error])
        except FailureGroup as exc:
            failure = exc.exceptions[0]
            report.nonconforming.append(
                f"{where}: {response.status_code}: {failure.title}: {failure.message}; {case.as_curl_command()}"
            )

    with warnings.catch_warnings():
        # schemathesis's own strategies use the random module; hypothesis warns of it, per run
        warnings.simplefilter("ignore", hypothesis.errors.HypothesisDeprecationWarning)
        (run if seed is None else hypothesis.seed(seed)(run))()
    return report


def _error_code(response: requests.Response) -> str:
    try:
        return str(response.json().get("error"))
    except (ValueError, AttributeError):
        return "?"
