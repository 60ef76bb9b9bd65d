// The Audit tab (administrators): the audit log, newest first, filtered and paged.
import { $ } from "/static/common.js";
import { call, report, tableRow, timeElement } from "/static/ui.js";

const PAGE = 50;
const KINDS = [
  "login", "logout", "token.create", "token.delete", "token.rotate", "token.lookup", "token.denied",
  "token.leaked", "user.create", "user.update",
  "user.delete", "user.locked", "user.unlock", "password.change", "session.end",
];
const COLUMNS = ["Time", "Kind", "User", "Result", "Address", "Detail"];

let offset = 0;

for (const kind of KINDS) {
  const option = document.createElement("option");
  option.value = kind;
  option.textContent = kind;
  $("audit-kind").append(option);
}

function filter() {
  const user = $("audit-user").value.trim();
  const kind = $("audit-kind").value;
  const day = $("audit-since").value;
  // The day starts at midnight in the browser's time zone.
  const since = day ? new Date(`${day}T00:00`).toISOString() : null;
  return { userId: user || null, kind: kind || null, since };
}

export async function loadAudit() {
  try {
    const data = await call(
      "query($page: PageInput, $filter: AuditFilter) { auditLog(page: $page, filter: $filter) { time kind success userId provider tokenName address detail } }",
      { page: { limit: PAGE + 1, offset }, filter: filter() },
    );
    const events = data.auditLog;
    const shown = events.slice(0, PAGE);
    $("audit-rows").replaceChildren(
      ...shown.map((event) => {
        const row = tableRow(COLUMNS, [
          timeElement(event.time),
          event.kind,
          event.userId ?? "",
          event.success ? "ok" : "failed",
          event.address ?? "",
          [event.provider, event.tokenName && `token “${event.tokenName}”`, event.detail]
            .filter(Boolean)
            .join(" · "),
        ]);
        if (!event.success) row.classList.add("failed");
        return row;
      }),
    );
    $("audit").hidden = shown.length === 0;
    $("audit-empty").hidden = shown.length !== 0;
    $("audit-newer").disabled = offset === 0;
    $("audit-older").disabled = events.length <= PAGE;
    $("audit-page").textContent = shown.length
      ? `Events ${offset + 1}–${offset + shown.length}`
      : "";
    $("audit-error").textContent = "";
  } catch (error) {
    report(error, $("audit-error"));
  }
}

$("audit-filter").addEventListener("submit", (event) => {
  event.preventDefault();
  offset = 0;
  loadAudit();
});
$("audit-newer").addEventListener("click", () => {
  offset = Math.max(0, offset - PAGE);
  loadAudit();
});
$("audit-older").addEventListener("click", () => {
  offset += PAGE;
  loadAudit();
});
