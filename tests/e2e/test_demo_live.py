"""The first path through every layer, as a person sees it: press Run demo,
watch the bar move and the run end as succeeded — live, with no reload, in
this tab and in a second one."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.e2e.conftest import Account, sign_in

pytestmark = pytest.mark.e2e

# Percentages the row showed, recorded in the page as they render.
RECORD_PERCENTS = """
(rowId) => {
  window.__seen = [];
  const watch = () => {
    const el = document.querySelector(`#${rowId} .run-percent`);
    if (el) window.__seen.push(parseInt(el.textContent));
  };
  new MutationObserver(watch).observe(document.body, {subtree: true, childList: true,
                                                     characterData: true});
  watch();
}
"""


def _row_ids(page: Page) -> set[str]:
    return set(page.eval_on_selector_all(".run-row", "rows => rows.map(r => r.id)"))


def _new_run_id(page: Page, before: set[str]) -> str:
    """The id of the row that appeared after `before` was taken (other tests
    of the session leave runs of their own in the list)."""
    row = page.locator(".run-row").first
    expect(row).to_be_visible()
    expect(row).not_to_have_id(re.compile("^(" + "|".join(before) + ")$") if before else "")
    row_id = row.get_attribute("id")
    assert row_id and re.fullmatch(r"run-\d+", row_id) and row_id not in before
    return row_id


def test_run_demo_shows_live_progress_in_two_tabs(
    admin_page: Page, context: BrowserContext, base_url: str
) -> None:
    page = admin_page
    other = context.new_page()
    other.goto(base_url)
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    expect(other.get_by_role("heading", name="Recent runs")).to_be_visible()
    # A reload would wipe this marker; client-side route changes would not.
    for tab in (page, other):
        tab.evaluate("window.__no_reload = true")

    before = _row_ids(page)
    page.get_by_role("button", name="Run demo").click()
    row_id = _new_run_id(page, before)
    page.evaluate(RECORD_PERCENTS, row_id)

    for tab in (page, other):
        row = tab.locator(f"#{row_id}")
        expect(row.locator(".run-status")).to_have_text("succeeded", timeout=30_000)
        expect(row.locator(".run-percent")).to_have_text("100 %")
    seen = page.evaluate("window.__seen")
    assert any(0 < percent < 100 for percent in seen), f"no intermediate progress: {seen}"
    assert seen == sorted(seen)
    for tab in (page, other):
        assert tab.evaluate("window.__no_reload === true"), "the page must not reload"
    expect(page.locator(".count-succeeded")).not_to_have_text("0")


def test_theme_switch_and_navigation_have_accessible_names(admin_page: Page) -> None:
    page = admin_page
    toggle = page.get_by_role("button", name="Toggle theme").first
    html = page.locator("html")
    before = html.get_attribute("class") or ""
    toggle.click()
    expect(html).not_to_have_class(before)
    nav = page.get_by_role("navigation", name="Main")
    for label in ("Dashboard", "Tasks", "Runs", "Profiles", "Alerts", "Settings"):
        expect(nav.get_by_role("link", name=label)).to_be_visible()


def test_phone_width_shows_menu_instead_of_sidebar(  # type: ignore[no-untyped-def]
    browser, base_url: str, accounts: dict[str, Account]
) -> None:
    context = browser.new_context(viewport={"width": 375, "height": 740})
    page = context.new_page()
    sign_in(page, base_url, accounts["admin"])
    expect(page.get_by_role("navigation", name="Main")).to_be_hidden()
    page.get_by_role("button", name="Menu").click()
    page.get_by_role("menuitem", name="Runs").click()
    expect(page).to_have_url(re.compile(r"/runs/?$"))
    expect(page.get_by_role("heading", name="Runs", exact=True)).to_be_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"the page scrolls sideways on a phone ({width}px)"
    context.close()
