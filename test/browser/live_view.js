// Drives the live view in headless Chromium (Debian's /usr/bin/chromium, through
// playwright-core) for sbx_http_tests: one command per line on stdin, one answer per line
// on stdout ("ok ..." or "fail ..."). Every wait is a condition with a deadline.
//   open URL                 load the page, wait until it says "live"
//   row ID MS                wait for the sandbox's row
//   click ID                 select the sandbox (log tail, history, trace)
//   log TEXT MS              wait for a log line containing TEXT
//   status ID TEXT MS        wait until the row's status reads TEXT
//   trace MS                 wait for a trace event in the detail panel
//   conn TEXT MS             wait until the connection badge reads TEXT
//   shot NAME                screenshot into $SBX_SCREEN_DIR/NAME.png
//   quit
"use strict";
const path = require("path");
const readline = require("readline");
const { chromium } = require(path.join(process.env.SBX_NPM_DIR || "/var/cache/sandboxd/npm", "node_modules", "playwright-core"));

let browser, page;
const out = (s) => process.stdout.write(s + "\n");
// The test closed its end: nothing more to say to anyone.
process.stdout.on("error", () => process.exit(0));

async function waitFor(fn, ms) {
  const t0 = Date.now();
  for (;;) {
    if (await fn()) return Date.now() - t0;
    if (Date.now() - t0 > ms) return -1;
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function run(cmd, args) {
  switch (cmd) {
    case "open": {
      browser = await chromium.launch({ timeout: 90000, executablePath: process.env.SBX_CHROMIUM || "/usr/bin/chromium",
                                        args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"] });
      page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
      page.on("pageerror", (e) => process.stderr.write("page error: " + e + "\n"));
      await page.goto(args[0], { timeout: 90000 });
      const ms = await waitFor(async () => (await page.textContent("#conn")) === "live", 60000);
      return ms >= 0 ? "ok open " + ms : "fail open: never live";
    }
    case "row": {
      const ms = await waitFor(async () => (await page.$(`tr[data-id="${args[0]}"]`)) !== null, +args[1]);
      return ms >= 0 ? `ok row ${args[0]} ${ms}` : `fail row ${args[0]} not listed within ${args[1]} ms`;
    }
    case "click":
      await page.click(`tr[data-id="${args[0]}"]`);
      return "ok click";
    case "log": {
      const text = args[0];
      const ms = await waitFor(async () => page.evaluate((t) => [...document.querySelectorAll("#logs .log-line")].some((e) => e.textContent.includes(t)), text), +args[1]);
      return ms >= 0 ? "ok log " + ms : "fail log: no line with " + text;
    }
    case "status": {
      const [id, want, dl] = args;
      let last = "";
      const ms = await waitFor(async () => {
        last = await page.evaluate((i) => { const r = document.querySelector(`tr[data-id="${i}"] .st`); return r ? r.textContent : ""; }, id);
        return last.startsWith(want);
      }, +dl);
      return ms >= 0 ? `ok status ${id} ${last}` : `fail status ${id}: reads "${last}"`;
    }
    case "trace": {
      let n = 0;
      const ms = await waitFor(async () => (n = await page.evaluate(() => document.querySelectorAll("#trace .trace-event").length)) > 0, +args[0]);
      const first = n > 0 ? await page.textContent("#trace .trace-event") : "";
      return ms >= 0 ? `ok trace ${n} ${first.replace(/\s+/g, " ").slice(0, 120)}` : "fail trace: none shown";
    }
    case "conn": {
      const want = args.slice(0, -1).join(" "), dl = +args[args.length - 1];
      let last = "";
      const ms = await waitFor(async () => (last = await page.textContent("#conn")).startsWith(want), dl);
      return ms >= 0 ? "ok conn " + last : `fail conn: reads "${last}"`;
    }
    case "shot": {
      const file = path.join(process.env.SBX_SCREEN_DIR || ".", args[0] + ".png");
      await page.screenshot({ path: file, fullPage: true });
      return "ok shot " + file;
    }
    case "quit":
      if (browser) await browser.close();
      out("ok quit");
      process.exit(0);
    default:
      return "fail unknown command " + cmd;
  }
}

const rl = readline.createInterface({ input: process.stdin });
let chain = Promise.resolve();
rl.on("line", (line) => {
  const [cmd, ...args] = line.trim().split(/\s+/);
  chain = chain.then(() => run(cmd, args)).then(out, (e) => out("fail " + cmd + ": " + String(e).split("\n")[0]));
});
rl.on("close", () => chain.then(async () => { if (browser) await browser.close(); process.exit(0); }));
