"""What Chromium costs the monitor's CPU (probes/browser/chromium.py): no renderer built
for window chrome a headless page never shows."""

from __future__ import annotations

from test_browser import APP, browser_test, config, load, page_target

from trio_monitor.probes.browser import open_browser_prober


@browser_test
async def test_no_renderer_is_built_for_window_chrome(server):
    """Each probe's context opens a headless window; Chromium would build two WebUI
    renderers per window for the omnibox popups (targets of type `browser_ui`), which
    cost more CPU than the page itself."""
    server.pages["app"] = APP
    async with open_browser_prober(config()) as prober:  # type: ignore[arg-type]
        assert (await load(prober, page_target(server, "app"))).ok
        running = prober.running
        assert running is not None
        page = await running.open_page()
        try:
            await page.send("Page.navigate", {"url": server.url("/page/app")})
            targets = await running.connection.send("Target.getTargets", {"filter": [{}]})
        finally:
            await running.close_page(page)
    kinds = sorted(t["type"] for t in targets["targetInfos"])
    assert "page" in kinds
    assert "browser_ui" not in kinds, targets
