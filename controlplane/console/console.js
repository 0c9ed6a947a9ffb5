// The Activity page: signs in with a management key (kept in sessionStorage, this tab only),
// reads GET /api/v1/activity/export?format=json for the chosen period, grouping and filters,
// draws the spend per day and the table, and downloads the same query as CSV or PDF.
// No build step and no dependencies: the control plane serves these files from its binary.

const KEY = "switchyard.managementKey";
const $ = (id) => document.getElementById(id);
let admin = false;

function key() {
  return sessionStorage.getItem(KEY);
}

async function api(path, accept = "application/json") {
  const response = await fetch(path, {
    headers: { Authorization: `Bearer ${key()}`, Accept: accept },
  });
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      message = (await response.json()).error.message;
    } catch {
      // not JSON: keep the status line
    }
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return response;
}

const day = (d) => d.toISOString().slice(0, 10);

/// The period as whole UTC days, the last one inclusive (today counts so far).
function period() {
  const today = new Date();
  const choice = $("period").value;
  if (choice === "custom") {
    return { start: $("start").value, end: $("end").value };
  }
  if (choice === "month") {
    const first = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), 1));
    return { start: day(first), end: day(today) };
  }
  const start = new Date(today.getTime() - (Number(choice) - 1) * 86400000);
  return { start: day(start), end: day(today) };
}

function query(format) {
  const params = new URLSearchParams({ format, group_by: $("group").value, ...period() });
  for (const [id, name] of [
    ["filter-key", "api_key_hash"],
    ["filter-member", "user_id"],
    ["filter-model", "model"],
    ["filter-user", "user"],
  ]) {
    const value = $(id).value.trim();
    if (value) params.set(name, value);
  }
  return `/api/v1/activity/export?${params}`;
}

const number = new Intl.NumberFormat("en-US");
function usd(text) {
  // Exact amounts as the ledger records them; shown to the cent or, below a cent, to 6 places.
  const value = Number(text);
  if (value !== 0 && Math.abs(value) < 0.01) return `$${value.toFixed(6)}`;
  return `$${value.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;
}

function cell(row, text, className) {
  const td = document.createElement(row === "th" ? "th" : "td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function line(l, isTotal) {
  const tr = document.createElement("tr");
  const label = cell("td", l.label || "(none)");
  if (l.label !== l.group && l.group && !isTotal) label.title = l.group;
  tr.append(
    label,
    cell("td", number.format(l.requests), "num"),
    cell("td", number.format(l.prompt_tokens), "num"),
    cell("td", number.format(l.completion_tokens), "num"),
  );
  const spend = cell("td", usd(l.usage), "num");
  spend.title = `${l.usage} USD`;
  const byok = cell("td", usd(l.byok_usage), "num");
  byok.title = `${l.byok_usage} USD`;
  tr.append(spend, byok);
  return tr;
}

function chart(daily) {
  const width = 720;
  const height = 180;
  const max = Math.max(...daily.map((d) => Number(d.usage)), 0);
  const slot = width / Math.max(daily.length, 1);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height + 20}`);
  svg.setAttribute("preserveAspectRatio", "none");
  daily.forEach((d, i) => {
    const value = Number(d.usage);
    const h = max > 0 ? (value / max) * height : 0;
    const bar = document.createElementNS(ns, "rect");
    bar.setAttribute("x", (i * slot + slot * 0.15).toFixed(2));
    bar.setAttribute("y", (height - h).toFixed(2));
    bar.setAttribute("width", (slot * 0.7).toFixed(2));
    bar.setAttribute("height", Math.max(h, value > 0 ? 1 : 0).toFixed(2));
    bar.setAttribute("class", "bar");
    const tip = document.createElementNS(ns, "title");
    tip.textContent = `${d.date}: ${d.usage} USD`;
    bar.append(tip);
    svg.append(bar);
  });
  for (const [text, x, anchor] of [
    [daily[0]?.date, 0, "start"],
    [daily.at(-1)?.date, width, "end"],
  ]) {
    if (!text) continue;
    const label = document.createElementNS(ns, "text");
    label.setAttribute("x", x);
    label.setAttribute("y", height + 16);
    label.setAttribute("text-anchor", anchor);
    label.textContent = text;
    svg.append(label);
  }
  $("chart").replaceChildren(svg);
}

async function refresh() {
  $("error").hidden = true;
  const groupLabel = $("group").selectedOptions[0].textContent;
  try {
    const { data } = await (await api(query("json"))).json();
    $("group-heading").textContent = groupLabel;
    $("period-label").textContent = `${data.start} to ${data.end} (UTC)`;
    $("total-usage").textContent = usd(data.total.usage);
    $("total-byok").textContent = usd(data.total.byok_usage);
    $("total-requests").textContent = number.format(data.total.requests);
    $("total-tokens").textContent = number.format(
      data.total.prompt_tokens + data.total.completion_tokens,
    );
    chart(data.daily);
    $("table").tBodies[0].replaceChildren(...data.lines.map((l) => line(l, false)));
    $("table").tFoot.replaceChildren(line({ ...data.total, label: "Total" }, true));
    $("empty").hidden = data.lines.length > 0;
    document.body.dataset.loaded = `${$("group").value}:${data.lines.length}`;
  } catch (e) {
    if (e.status === 401) return signOut();
    $("error").textContent = e.message;
    $("error").hidden = false;
  }
}

async function download(format) {
  try {
    const response = await api(query(format), format === "pdf" ? "application/pdf" : "text/csv");
    const disposition = response.headers.get("content-disposition") || "";
    const name = /filename="([^"]+)"/.exec(disposition)?.[1] || `switchyard-usage.${format}`;
    const link = document.createElement("a");
    link.href = URL.createObjectURL(await response.blob());
    link.download = name;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  } catch (e) {
    $("error").textContent = e.message;
    $("error").hidden = false;
  }
}

/// Admins see who spent what: the key and member filters and groupings.
async function loadChoices() {
  try {
    await api("/api/v1/credits");
    admin = true;
  } catch {
    admin = false;
  }
  document.querySelectorAll(".admin").forEach((el) => {
    el.hidden = !admin;
    if (el.tagName === "OPTION") el.disabled = !admin;
  });
  if (admin) {
    const [keys, members] = await Promise.all([
      api("/api/v1/keys?include_disabled=true").then((r) => r.json()),
      api("/api/v1/organization/members").then((r) => r.json()),
    ]);
    $("filter-key").replaceChildren(
      new Option("All keys", ""),
      ...keys.data.map((k) => new Option(`${k.name} (${k.label})`, k.hash)),
    );
    $("filter-member").replaceChildren(
      new Option("All members", ""),
      ...members.data.map((m) => new Option(m.email, m.id)),
    );
  }
  try {
    const models = await (await api("/api/v1/models")).json();
    $("models").replaceChildren(...models.data.map((m) => new Option(m.id)));
  } catch {
    // the datalist is a convenience
  }
  $("who").textContent = admin ? "Admin" : "Member";
  $("who").hidden = false;
}

async function signIn(event) {
  event.preventDefault();
  sessionStorage.setItem(KEY, $("key").value.trim());
  $("key").value = "";
  await show();
}

function signOut() {
  sessionStorage.removeItem(KEY);
  $("activity").hidden = true;
  $("sign-out").hidden = true;
  $("who").hidden = true;
  $("sign-in").hidden = false;
}

async function show() {
  if (!key()) return signOut();
  try {
    await api(query("json"));
  } catch (e) {
    sessionStorage.removeItem(KEY);
    $("sign-in-error").textContent =
      e.status === 401 || e.status === 403 ? "That is not a live management key." : e.message;
    $("sign-in-error").hidden = false;
    return;
  }
  $("sign-in-error").hidden = true;
  $("sign-in").hidden = true;
  $("activity").hidden = false;
  $("sign-out").hidden = false;
  await loadChoices();
  await refresh();
}

$("sign-in-form").addEventListener("submit", signIn);
$("sign-out").addEventListener("click", signOut);
$("period").addEventListener("change", () => {
  const custom = $("period").value === "custom";
  document.querySelectorAll(".custom").forEach((el) => (el.hidden = !custom));
  if (custom && !$("start").value) {
    const p = { start: day(new Date(Date.now() - 29 * 86400000)), end: day(new Date()) };
    $("start").value = p.start;
    $("end").value = p.end;
  }
  refresh();
});
for (const id of ["start", "end", "group", "filter-key", "filter-member", "filter-model", "filter-user"]) {
  $(id).addEventListener("change", refresh);
}
$("controls").addEventListener("submit", (e) => e.preventDefault());
$("download-csv").addEventListener("click", () => download("csv"));
$("download-pdf").addEventListener("click", () => download("pdf"));
show();
