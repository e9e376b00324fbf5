// Drives the gateway's web page in headless Chromium (Debian's, through playwright-core):
// node page-test.mjs <gateway URL> <chromium path>. Checks that the page loads, that the live
// chart moves while the machine brews, that the finished shot appears in the history
// without a reload, that QA and sync runs started from the page show their progress and
// their end, and that the page recovers by itself from a gap, a frozen gateway (its silence
// watchdog) and a gateway killed and restarted. For the last two it asks the test that runs it,
// on standard output ("need: stop" | "need: cont" | "need: restart"), and waits for a line on
// standard input. Prints "page test: ok" or fails with what it saw; stops after 180 s.
import { chromium } from "playwright-core";
import { createInterface } from "node:readline";

const [url, executablePath] = process.argv.slice(2);
setTimeout(() => { console.error("page test: timed out"); process.exit(1); }, 180_000).unref();
const lines = createInterface({ input: process.stdin });
const answers = lines[Symbol.asyncIterator]();
async function need(what) {
  console.log(`need: ${what}`);
  const answer = await answers.next();
  if (answer.done) throw new Error(`no answer to "need: ${what}"`);
}
const subscribed = (page) => page.evaluate(() => Number(document.body.dataset.subscribed || 0));
// Screenshots for a person to look at, when asked for (CREMA_SCREENSHOTS=<folder>).
const shots = process.env.CREMA_SCREENSHOTS;
const screenshot = async (target, name) => { if (shots) await target.screenshot({ path: `${shots}/${name}.png` }); };
const SERIES = ["time", "pressure", "flow", "weight", "weight flow", "temperature", "pressure target", "flow target"];
const UNITS = { time: / s$/, pressure: / bar$/, flow: / ml\/s$/, weight: / g$/, "weight flow": / g\/s$/, temperature: / °C$/, "pressure target": / bar$/, "flow target": / ml\/s$/ };
// The chart's axes (their labels, and whether each is drawn) and its legend's series.
const axesOf = (page, name) => page.evaluate((name) => charts[name].plot.axes.map((a) => [a.label || null, a.show !== false]), name);
const legendOf = (page, chart) => page.$$eval(`${chart} .u-legend .u-series`, (rows) => rows.map((r) => [r.querySelector(".u-label").textContent, r.querySelector(".u-value").textContent]));
// Points at 40 % of the chart (a finger, or the mouse: the middle of the infusion) and checks
// the crosshair's values: a number with its unit for every series.
async function crosshair(page, chart, touch) {
  await page.$eval(chart, (el) => el.scrollIntoView({ block: "center" }));
  await page.waitForTimeout(200);
  const box = await (await page.$(`${chart} .u-over`)).boundingBox();
  const [x, y] = [box.x + box.width * 0.4, box.y + box.height / 2];
  if (touch) await page.touchscreen.tap(x, y); else await page.mouse.move(x, y);
  await page.waitForTimeout(200);
  const legend = await legendOf(page, chart);
  for (const name of SERIES) {
    const row = legend.find(([label]) => label === name);
    if (!row) throw new Error(`${chart}: no ${name} in the legend ${JSON.stringify(legend)}`);
    const value = row[1].trim();
    if (!/^-?\d+\.\d /.test(value) || !UNITS[name].test(value)) throw new Error(`${chart}: the crosshair shows ${name} = ${value}`);
  }
  return legend;
}
// Away from the chart, the legend shows the readings at the shot's last sample (and a compared
// shot's at its own last one), read here from the chart's data.
async function latest(page, chart, name) {
  // The legend and the data in one turn of the page's loop: no live event lands between them.
  const [legend, expected] = await page.evaluate(([chart, name]) => {
    const legend = [...document.querySelectorAll(`${chart} .u-legend .u-series`)].map((r) => [r.querySelector(".u-label").textContent, r.querySelector(".u-value").textContent]);
    const { data, series } = charts[name].plot;
    const end = (columns) => Math.max(-1, ...columns.map((c) => { for (let i = c.length - 1; i >= 0; i--) if (c[i] != null) return i; return -1; }));
    const own = end(data.slice(1, 8)), other = end(data.slice(8));
    return [legend, series.map((s, i) => [s.label, i === 0 ? data[0][own] : data[i][i < 8 ? own : other]])];
  }, [chart, name]);
  let numbers = 0;
  for (const [label, value] of expected) {
    const row = legend.find(([l]) => l === label);
    if (!row) throw new Error(`${chart}: no ${label} in the legend ${JSON.stringify(legend)}`);
    const shown = row[1].trim();
    if (value == null ? shown !== "–" : !shown.startsWith(value.toFixed(1) + " ")) throw new Error(`${chart}: away, the legend shows ${label} = ${shown}, the last sample has ${value}`);
    if (value != null) numbers++;
  }
  if (numbers < 6) throw new Error(`${chart}: away, only ${numbers} readings in the legend ${JSON.stringify(legend)}`);
  return legend;
}
const browser = await chromium.launch({
  executablePath,
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run"],
});
try {
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, hasTouch: true, isMobile: true });
  const page = await phone.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(url + "?silence_ms=3000");
  await page.waitForSelector("#machine option", { state: "attached", timeout: 10_000 });
  // The live chart moves: samples keep arriving while the machine brews.
  await page.waitForFunction(() => Number(document.body.dataset.liveSamples || 0) > 20, null, { timeout: 60_000 });
  const before = Number(await page.evaluate(() => document.body.dataset.liveSamples));
  await page.waitForFunction((n) => Number(document.body.dataset.liveSamples) > n + 10, before, { timeout: 20_000 });
  // The live chart has its axes with units (on a phone: time, bar · ml/s, g; °C only in the
  // legend) and its legend every series.
  const liveAxes = JSON.stringify(await axesOf(page, "live"));
  if (liveAxes !== JSON.stringify([[null, true], ["bar · ml/s", true], ["g", true], ["°C", false]])) throw new Error(`live chart axes ${liveAxes}`);
  const liveLegend = (await legendOf(page, "#chart")).map(([label]) => label);
  if (JSON.stringify(liveLegend) !== JSON.stringify(SERIES)) throw new Error(`live chart legend ${liveLegend}`);
  const ticks = await page.evaluate(() => charts.live.plot.axes[0]._values || []);
  if (!ticks.length || !ticks.every((t) => / s$/.test(t))) throw new Error(`time ticks ${ticks}`);
  await screenshot(page, "phone-live");
  // Nobody touching it, the live legend shows the latest readings.
  await page.evaluate(() => drawLive());
  await latest(page, "#chart", "live");
  // The gauges show numbers.
  const pressure = await page.textContent("#g-p");
  if (!/^\d+\.\d$/.test(pressure.trim())) throw new Error(`pressure gauge shows ${pressure}`);
  // The shot appears in the history without a reload.
  await page.waitForSelector("li.shot", { timeout: 60_000 });
  const item = await page.textContent("li.shot");
  if (!item.includes("Fixture Classic 9 bar")) throw new Error(`history shows ${item}`);
  // Its page opens with an export link.
  await page.click("li.shot");
  await page.waitForSelector("#detail.open", { timeout: 10_000 });
  const href = await page.getAttribute("#export", "href");
  // The shot's public id: the machine's UUID (or the store's key before the machine named it).
  if (!/^\/api\/v1\/shots\/[0-9A-Za-z-]+\/file$/.test(href)) throw new Error(`export link ${href}`);
  // Its chart: a finger on it shows every value at that moment, with its unit.
  await page.waitForFunction(() => charts.shot && Number($("shot-chart").dataset.samples) > 0, null, { timeout: 10_000 });
  await crosshair(page, "#shot-chart", true);
  await screenshot(await page.$("#detail"), "phone-shot");
  // A QA run started from the page shows its progress from the SSE stream, then its summary.
  await page.click("#run-qa");
  await page.waitForFunction(() => document.body.dataset.run === "qa:succeeded", null, { timeout: 20_000 });
  const qa = await page.textContent("#run-text");
  if (!/^\d+ of \d+ shots checked/.test(qa)) throw new Error(`QA run shows ${qa}`);
  const bar = await page.evaluate(() => [$("run-bar").value, $("run-bar").max]);
  if (bar[0] !== bar[1] || bar[1] < 1) throw new Error(`QA progress bar at ${bar}`);
  if (Number(await page.evaluate(() => document.body.dataset.runEvents)) < 2) throw new Error("no run events");
  if (await page.isDisabled("#run-sync")) throw new Error("the buttons stay disabled after the run");
  // And a history sync.
  await page.click("#run-sync");
  await page.waitForFunction(() => document.body.dataset.run === "sync:succeeded", null, { timeout: 30_000 });
  const sync = await page.textContent("#run-text");
  if (!sync.includes("on the machine")) throw new Error(`sync run shows ${sync}`);
  // On a desktop: all four axes, the mouse's crosshair, and the comparison overlay with a shot
  // the sync brought in.
  const desk = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  desk.on("pageerror", (e) => errors.push(String(e)));
  await desk.goto(url);
  await desk.waitForFunction(() => Number(document.body.dataset.shots || 0) > 1, null, { timeout: 20_000 });
  await desk.click("li.shot");
  await desk.waitForSelector("#detail.open", { timeout: 10_000 });
  await desk.waitForFunction(() => charts.shot && Number($("shot-chart").dataset.samples) > 0, null, { timeout: 10_000 });
  const deskAxes = JSON.stringify(await axesOf(desk, "shot"));
  if (deskAxes !== JSON.stringify([[null, true], ["bar · ml/s", true], ["g", true], ["°C", true]])) throw new Error(`desktop shot chart axes ${deskAxes}`);
  await crosshair(desk, "#shot-chart", false);
  await desk.mouse.move(1, 1);
  await latest(desk, "#shot-chart", "shot");
  await desk.selectOption("#compare", { index: 2 });
  await desk.waitForFunction(() => charts.shot.compare && charts.shot.plot.series.some((s) => s.label === "pressure (compared)"), null, { timeout: 10_000 });
  const compared = await crosshair(desk, "#shot-chart", false);
  for (const name of ["pressure", "flow", "weight", "weight flow"]) {
    const other = compared.find(([label]) => label === `${name} (compared)`);
    if (!other || !/^-?\d+\.\d /.test(other[1].trim()) || !UNITS[name].test(other[1].trim())) throw new Error(`the compared ${name} shows ${other}`);
  }
  await screenshot(await desk.$("#detail"), "desktop-shot-compared");
  // Away from the chart, both shots' last readings (the two shots end at different times).
  await desk.mouse.move(1, 1);
  const away = await latest(desk, "#shot-chart", "shot");
  for (const name of ["pressure", "flow", "weight", "weight flow"]) {
    const [, shown] = away.find(([label]) => label === `${name} (compared)`);
    if (!UNITS[name].test(shown.trim())) throw new Error(`away, the compared ${name} shows ${shown}`);
  }
  // Two shots of different lengths (this one cut to 100 samples, then the compared one): each
  // side's legend still shows its own end.
  for (const cut of [[100, 0], [0, 100]]) {
    await desk.evaluate((cut) => {
      const all = samplesOf(opened), [a, b] = cut.map((n) => n ? all.slice(0, n) : all);
      plot("shot", $("shot-chart"), a, b, false);
    }, cut);
    const shown = await latest(desk, "#shot-chart", "shot");
    if (shown.some(([label, value]) => label.endsWith("(compared)") && !/\d/.test(value))) throw new Error(`cut ${cut}: ${JSON.stringify(shown)}`);
  }
  await desk.evaluate(() => drawShot());
  // Closed, then the window narrowed: the shot's chart is made anew for the width when it is
  // opened again, one chart in its place.
  await desk.click("#close");
  await desk.setViewportSize({ width: 500, height: 900 });
  await desk.waitForTimeout(400);
  await desk.click("li.shot");
  await desk.waitForFunction(() => charts.shot.narrow && $("shot-chart").querySelectorAll(".uplot").length === 1, null, { timeout: 10_000 });
  await desk.close();

  // Recovery, all without a reload: this mark would be gone after one.
  await page.evaluate(() => { window.sameDocument = true; });
  // A gap (frames dropped for this page) asks the gateway for a fresh snapshot.
  let n = await subscribed(page);
  await page.evaluate(() => ws.onmessage({ data: JSON.stringify({ type: "gap", topic, dropped: 3 }) }));
  await page.waitForFunction((n) => Number(document.body.dataset.subscribed) > n, n, { timeout: 10_000 });
  // A gateway that stops answering (frozen: the connection stays open, nothing comes): the
  // watchdog gives up on the silent connection and the page tries again.
  n = await subscribed(page);
  await need("stop");
  await page.waitForFunction(() => document.body.dataset.ws !== "open", null, { timeout: 15_000 });
  await need("cont");
  await page.waitForFunction((n) => Number(document.body.dataset.subscribed) > n, n, { timeout: 45_000 });
  // A gateway killed and started again: the page reconnects with back-off and live data flows.
  n = await subscribed(page);
  await need("restart");
  await page.waitForFunction(() => document.body.dataset.ws !== "open", null, { timeout: 15_000 });
  await page.waitForFunction((n) => Number(document.body.dataset.subscribed) > n, n, { timeout: 45_000 });
  const frames = await page.evaluate(() => Number(document.body.dataset.frames));
  await page.waitForFunction((f) => Number(document.body.dataset.frames) > f + 5, frames, { timeout: 20_000 });
  if (!(await page.evaluate(() => window.sameDocument === true))) throw new Error("the page was reloaded");
  if (errors.length) throw new Error(`page errors: ${errors.join("; ")}`);
  console.log("page test: ok");
} finally {
  lines.close();
  await browser.close();
}
