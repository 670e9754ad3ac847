"""The course in a real browser: JupyterLab on 127.0.0.1, driven by Playwright in Debian's Chromium.

What nbval cannot see: that the widgets render and answer in JupyterLab. The test copies notebooks 05
and 10 to a temporary folder, serves it with JupyterLab on a free local port, opens each notebook in
headless Chromium, runs every cell (JupyterLab's Run All Cells command), and then

- in 03, moves the softmax-temperature slider with the keyboard and checks that the picture under it
  is redrawn (a different image);
- in 08, checks that the offline attention viewer shows its picture.

Chromium comes from Debian (`apt-get install chromium`, done by `.ci/run`); Playwright's own browser
downloads are impossible here. Outside CI the test skips, saying so, when no Chromium is found; in CI
(`CI=true`) a missing Chromium is a failure.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
# Flags for a closed network: no background requests, no first-run or update checks.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"  # the notebook on show
RUN_TIMEOUT_MS = int(os.environ.get("COURSE_BROWSER_TIMEOUT_MS", "150000"))


def find_chromium() -> str | None:
    for candidate in (os.environ.get("COURSE_CHROMIUM"), *CHROMIUM_CANDIDATES, shutil.which("chromium")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


CHROMIUM = find_chromium()
if CHROMIUM is None:
    if os.environ.get("CI") == "true":
        raise RuntimeError("CI needs Chromium for tests/test_browser.py: .ci/run installs Debian's chromium")
    pytest.skip("no Chromium found (install Debian's chromium, or set COURSE_CHROMIUM to a Chrome binary)",
                allow_module_level=True)
playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is in requirements.txt")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab serving a copy of notebooks 05 and 10: yields the base URL with its token."""
    folder = tmp_path_factory.mktemp("lab")
    for name in ("05_attention.ipynb", "10_looking_inside.ipynb"):
        # Without the stored outputs, prompts and widget state: whatever shows up came from this run.
        notebook = json.loads((ROOT / "notebooks" / name).read_text(encoding="utf-8"))
        notebook["metadata"].pop("widgets", None)
        for cell in notebook["cells"]:
            if cell["cell_type"] == "code":
                cell["outputs"], cell["execution_count"] = [], None
                # A collapsed input (the hidden solutions) shows no prompt number; show every input so
                # that the prompts tell when each cell has run (tests/test_notebooks.py checks the hiding).
                cell["metadata"].pop("jupyter", None)
        (folder / name).write_text(json.dumps(notebook), encoding="utf-8")
    port, token = free_port(), "course-browser-test"
    home = tmp_path_factory.mktemp("home")
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
           "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"), "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
           "HF_HUB_OFFLINE": "1"}
    # Every cell in the page (no virtual scrolling), so that the test can find and scroll to any output.
    tracker = home / "settings" / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True)
    tracker.write_text('{"windowingMode": "none"}')
    log = (home / "lab.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={folder}", "--LabApp.news_url=None",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--LabApp.extension_manager=readonly",
         "--LabApp.expose_app_in_browser=True",
         *(["--allow-root"] if os.geteuid() == 0 else [])],  # CI runs as root
        cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    raise RuntimeError(f"JupyterLab did not start:\n{(home / 'lab.log').read_text()[-3000:]}") from None
                time.sleep(0.5)
        yield base, token
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def open_and_run_all(browser, lab, name: str):
    """Open a notebook in JupyterLab, run every cell, wait until all are done."""
    base, token = lab
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(60_000)
    # A workspace of its own per notebook, so that no tab of another test is restored beside it.
    page.goto(f"{base}/lab/workspaces/{Path(name).stem}/tree/{name}?token={token}&reset")
    page.wait_for_selector(f"{PANEL} .jp-Cell")
    # Run All Cells through JupyterLab's own command registry (exposed with --LabApp.expose_app_in_browser),
    # once the notebook's kernel is connected and idle: a click on the Run menu before the kernel
    # listens sometimes ran nothing, and a menu click sometimes timed out (CI, 2026-12-01 and -02).
    started = page.evaluate(
        """async () => {
            const deadline = Date.now() + 90000;
            const wait = (ms) => new Promise((r) => setTimeout(r, ms));
            while (!(window.jupyterapp && window.jupyterapp.shell.currentWidget
                     && window.jupyterapp.shell.currentWidget.sessionContext)) {
                if (Date.now() > deadline) return 'no notebook panel';
                await wait(200);
            }
            const context = window.jupyterapp.shell.currentWidget.sessionContext;
            await context.ready;
            while (true) {
                const kernel = context.session && context.session.kernel;
                if (kernel && kernel.connectionStatus === 'connected' && kernel.status === 'idle') break;
                if (Date.now() > deadline) return 'kernel not idle: ' + (kernel ? kernel.status : 'none');
                await wait(200);
            }
            await window.jupyterapp.commands.execute('notebook:run-all-cells');
            return 'ok';
        }""",
    )
    assert started == "ok", f"{name}: could not run the notebook in JupyterLab ({started})"
    code_cells = page.locator(f"{PANEL} .jp-CodeCell").count()
    # Done when every code cell's prompt holds a number (running cells show [*], queued ones [ ]).
    try:
        page.wait_for_function(
            """([panel, n]) => {
                const prompts = [...document.querySelectorAll(panel + ' .jp-CodeCell .jp-InputPrompt')];
                return prompts.length === n && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
            }""",
            arg=[PANEL, code_cells], timeout=RUN_TIMEOUT_MS,
        )
    except playwright_api.TimeoutError:
        prompts = page.locator(f"{PANEL} .jp-CodeCell .jp-InputPrompt").all_inner_texts()
        pytest.fail(f"{name}: not every cell ran within {RUN_TIMEOUT_MS / 1000:.0f} s; prompts: {' '.join(prompts)}")
    errors = page.locator(f"{PANEL} .jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
                          ":has-text('Traceback')")
    assert errors.count() == 0, errors.first.inner_text()[:2000]
    return page


def image_source(widget) -> str:
    images = widget.locator("img")
    images.first.wait_for(state="visible")
    return images.first.get_attribute("src") or ""


def test_notebook_03_slider_redraws_its_picture(browser, lab):
    page = open_and_run_all(browser, lab, "05_attention.ipynb")
    # The softmax-temperature explorer: the first widget box holding a slider.
    explorer = page.locator(f"{PANEL} .jupyter-widgets.widget-vbox:has(.widget-slider)").first
    explorer.scroll_into_view_if_needed()
    before = image_source(explorer)
    handle = explorer.locator(".noUi-handle").first
    handle.focus()
    for _ in range(5):
        handle.press("ArrowRight")
    page.wait_for_function(
        "([el, old]) => { const img = el.querySelector('img'); return img && img.getAttribute('src') !== old; }",
        arg=[explorer.element_handle(), before], timeout=30_000,
    )
    assert image_source(explorer) != before
    page.close()


def test_notebook_08_offline_viewer_shows_its_picture(browser, lab):
    page = open_and_run_all(browser, lab, "10_looking_inside.ipynb")
    # The AttentionViewer: a widget box with its "input" dropdown and a drawn heatmap.
    viewer = page.locator(f"{PANEL} .jupyter-widgets.widget-vbox:has(.widget-dropdown)").first
    viewer.scroll_into_view_if_needed()
    source = image_source(viewer)
    assert source.startswith("data:image/png;base64,") and len(source) > 5_000, source[:80]
    page.close()
