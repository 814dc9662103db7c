"""Finding a case by one of its identifiers: the sans-IO lookup both hooks drive (``hook.exchange(CaseLookup(...))``).

A creditor reference with a ``/`` (invoice numbers such as ``2024/0001``) is sent as one encoded path
segment (``2024%2F0001``). A server that decodes ``%2F`` before routing answers 404 for it; then, and
only then, the lookup searches the newest cases (``GET /cases?Sort=DateCreated:desc``) for that
``creditorReference``, at most :data:`SEARCH_MAX_PAGES` pages.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_provider_debitura.exceptions import DebituraConfigError, DebituraNotFoundError
from airflow_provider_debitura.hooks import endpoints
from airflow_provider_debitura.hooks.endpoints import ApiCall
from airflow_provider_debitura.hooks.exchange import Exchange, unwrap
from airflow_provider_debitura.models import Case, CasePage
from airflow_provider_debitura.validation import CaseSelector

SEARCH_MAX_PAGES = 10
"""Pages of 100 cases searched after a 404 for a reference with ``/``: the 1,000 newest cases."""

SEARCH_PAGE_SIZE = 100


__all__ = ["SEARCH_MAX_PAGES", "CaseLookup"]


def _first_call(selector: CaseSelector) -> ApiCall[Case]:
    """The first request of a lookup. Private on purpose: alone it has no search fallback, so every caller
    goes through :class:`CaseLookup` (driven by ``hook.exchange``).

    :param selector: exactly one identifier of the case.
    """
    if selector.case_id:
        return endpoints.get_case(selector.case_id)
    if selector.creditor_reference:
        return endpoints.get_case_by_creditor_reference(selector.creditor_reference)
    if selector.case_reference:
        return endpoints.get_case_by_reference(selector.case_reference)
    raise DebituraConfigError("No case given.")


class CaseLookup(Exchange[Case]):
    """The lookup of one case, with the search fallback for a creditor reference containing ``/``: an
    :class:`~airflow_provider_debitura.hooks.exchange.Exchange`, e.g. ``case = hook.exchange(CaseLookup(selector))``.
    A 404 starts the search when it applies, else it is raised (with a hint about whitespace); any other error
    is raised as it is.

    Cost: 1 request; after a 404 for a reference with ``/``, up to :data:`SEARCH_MAX_PAGES` more.

    :param selector: exactly one identifier of the case.
    """

    def __init__(self, selector: CaseSelector) -> None:
        self.selector = selector
        self.requests = 0
        self._call: ApiCall[Any] | None = _first_call(selector)
        self._page = 0
        self._searched = 0
        self._not_found: DebituraNotFoundError | None = None
        self._case: Case | None = None

    def next_calls(self) -> Sequence[ApiCall[Any]]:
        """The next request, or none once the case is found."""
        return [] if self._call is None else [self._call]

    def feed(self, call: ApiCall[Any], answer: object) -> None:
        """Take the answer to the last call.

        :param call: the call.
        :param answer: the case (direct lookup), a page of cases (search), or the error the call ended with.
        """
        if isinstance(answer, DebituraNotFoundError):
            self._on_404(answer)
            return
        found: Case | CasePage = unwrap(answer)
        self.requests += 1
        if isinstance(found, Case):
            self._done(found)
            return
        reference = self.selector.creditor_reference
        self._searched += found.raw_count
        match = next((c for c in found.cases if c.creditor_reference == reference), None)
        if match is not None:
            self._done(match)
        elif found.raw_count < SEARCH_PAGE_SIZE or self._page >= SEARCH_MAX_PAGES:
            raise self._searched_in_vain()
        else:
            self._next_search_page()

    def _on_404(self, exc: DebituraNotFoundError) -> None:
        """A 404 for the last call: start the search if it applies, else raise ``exc``."""
        self.requests += 1
        reference = self.selector.creditor_reference or ""
        if self._page and self._not_found is not None:  # the server has no GET /cases either
            raise self._searched_in_vain(f"GET /cases answered 404 too: {exc}") from None
        if "/" not in reference:
            raise _with_whitespace_hint(exc, reference) from None
        self._not_found = exc
        self._next_search_page()

    def result(self) -> Case:
        """The case, once found."""
        if self._case is None:
            raise RuntimeError("lookup not finished")
        return self._case

    def _next_search_page(self) -> None:
        self._page += 1
        self._call = endpoints.get_cases_page(page=self._page, page_size=SEARCH_PAGE_SIZE)

    def _done(self, case: Case) -> None:
        self._case = case
        self._call = None

    def _searched_in_vain(self, why: str | None = None) -> DebituraNotFoundError:
        first = self._not_found
        assert first is not None
        searched = why or (
            f"the {self._searched:,} newest cases were searched too ({self._page} requests): none has "
            f"creditorReference {self.selector.creditor_reference!r}"
        )
        return _with_whitespace_hint(
            DebituraNotFoundError(
                f"{first}. The reference contains '/', which some servers cannot route; {searched}.",
                method=first.method,
                path=first.path,
                status=404,
                api_error=first.api_error,
            ),
            self.selector.creditor_reference or "",
        )


def _with_whitespace_hint(exc: DebituraNotFoundError, reference: str) -> DebituraNotFoundError:
    """The 404 as it is, or, for a creditor reference with leading or trailing whitespace, the same 404 saying
    that the reference was looked up exactly as given and how to look it up without the whitespace."""
    if not reference or reference == reference.strip():
        return exc
    return DebituraNotFoundError(
        f"{exc}. creditor_reference={reference!r} has leading or trailing whitespace and was looked up exactly as "
        f"given; if the case's reference has none, pass creditor_reference={reference.strip()!r} "
        "(e.g. a template's value with '| trim').",
        method=exc.method,
        path=exc.path,
        status=404,
        api_error=exc.api_error,
    )
