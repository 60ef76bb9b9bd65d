// The Sessions tab: where the person is logged in, with End on each and "End all other sessions".
import { $ } from "/static/common.js";
import { SESSION_FIELDS, button, call, report, sessionRows } from "/static/ui.js";

export async function loadSessions() {
  const status = $("sessions-status");
  try {
    const data = await call(`{ sessionList { ${SESSION_FIELDS} } }`);
    const sessions = data.sessionList;
    $("session-rows").replaceChildren(
      ...sessionRows(sessions, (session) =>
        button(session.current ? "Log out" : "End", {
          label: session.current ? "Log out this browser" : `End session ${describe(session)}`,
          className: "danger",
          onClick: () => endSession(session),
        }),
      ),
    );
    $("end-others").disabled = sessions.every((s) => s.current);
    $("sessions-error").textContent = "";
    if (status.dataset.keep !== "yes") status.textContent = "";
    status.dataset.keep = "";
  } catch (error) {
    report(error, $("sessions-error"));
  }
}

function describe(session) {
  const how = session.provider === "token" ? `token ${session.tokenName ?? ""}` : "password login";
  return `${how} from ${session.address ?? "an unknown address"}`;
}

async function endSession(session) {
  try {
    await call("mutation($id: ID!) { sessionEnd(id: $id) }", { id: session.id });
    if (session.current) {
      location.reload();
      return;
    }
    keepStatus("Session ended.");
    await loadSessions();
    $("tab-sessions").focus();
  } catch (error) {
    report(error, $("sessions-error"));
  }
}

function keepStatus(text) {
  $("sessions-status").textContent = text;
  $("sessions-status").dataset.keep = "yes";
}

async function endOthers() {
  try {
    const data = await call("mutation { sessionEndOthers }");
    const ended = data.sessionEndOthers;
    keepStatus(ended === 1 ? "1 other session ended." : `${ended} other sessions ended.`);
    await loadSessions();
    $("tab-sessions").focus();
  } catch (error) {
    report(error, $("sessions-error"));
  }
}

$("end-others").addEventListener("click", endOthers);
