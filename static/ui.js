// What the profile page's tabs share: calls that notice a lost session, times in the browser's
// own zone, table rows that become cards on a phone, and copying a secret shown once.
import { ApiError, gql } from "/static/common.js";

let onSessionLost = () => {};

// Sets what happens when a call finds the session gone (ended elsewhere, expired).
export function whenSessionLost(handler) {
  onSessionLost = handler;
}

export function isSessionLost(error) {
  return error instanceof ApiError && ["sessionExpired", "authRequired"].includes(error.code);
}

// Runs an operation; a lost session also tells the page, which closes what is open.
export async function call(query, variables = {}) {
  try {
    return await gql(query, variables);
  } catch (error) {
    if (isSessionLost(error)) onSessionLost();
    throw error;
  }
}

// Shows a failed call's message in the element `where`, unless the session was lost.
export function report(error, where) {
  if (!isSessionLost(error)) where.textContent = error.message;
}

const localTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

// A time in the browser's time zone, the UTC time on hover.
export function timeElement(text) {
  const date = new Date(text);
  const time = document.createElement("time");
  time.dateTime = date.toISOString();
  time.textContent = localTime.format(date);
  time.title = `${date.toISOString().slice(0, 16).replace("T", " ")} UTC`;
  return time;
}

// A token's expiry for its row, and whether it has passed.
export function tokenExpiry(token) {
  if (!token.expireTime) return { expires: "never", expired: false };
  const expired = new Date(token.expireTime).getTime() <= Date.now();
  return { expires: [timeElement(token.expireTime), expired ? " (expired)" : ""], expired };
}

export const TOKEN_ACCESS_FIELDS = "scopes services allowFrom";

// A token's scopes and bounds as badges; an unscoped token's (api, proxy, anywhere) as one.
export function accessBadges(token) {
  const badge = (text, title) => {
    const span = document.createElement("span");
    span.className = "badge";
    span.textContent = text;
    if (title) span.title = title;
    return span;
  };
  const everything =
    token.scopes.join() === "api,proxy" && !token.services.length && !token.allowFrom.length;
  if (everything) return [badge("full access", "Lodge's API and every service, from anywhere")];
  const names = { api: "API", read_api: "API read-only", proxy: "proxy", read_proxy: "proxy read-only" };
  const badges = token.scopes.map((s) => badge(names[s] ?? s));
  for (const service of token.services) badges.push(badge(`service ${service}`));
  for (const range of token.allowFrom) badges.push(badge(`from ${range}`));
  return badges.flatMap((b, i) => (i ? [" ", b] : [b]));
}

// When and from where a token was last used, for its row.
export function tokenLastUse(token) {
  if (!token.lastUsedTime) return "never";
  return [timeElement(token.lastUsedTime), token.lastUsedAddress ? ` from ${token.lastUsedAddress}` : ""];
}

// A table row: each cell a text, a node or a list of nodes, labelled with its column's name for
// the card layout of narrow screens.
export function tableRow(labels, cells) {
  const row = document.createElement("tr");
  cells.forEach((content, i) => {
    const cell = document.createElement("td");
    cell.dataset.label = labels[i];
    if (Array.isArray(content)) cell.append(...content);
    else cell.append(content ?? "");
    row.append(cell);
  });
  return row;
}

export function button(text, { label, className, onClick } = {}) {
  const element = document.createElement("button");
  element.type = "button";
  element.textContent = text;
  if (label) element.setAttribute("aria-label", label);
  if (className) element.className = className;
  if (onClick) element.addEventListener("click", onClick);
  return element;
}

// A button that asks once more before it acts: the first press turns it into "Confirm".
export function confirmingButton(text, label, action) {
  const element = button(text, { label, className: "danger" });
  element.addEventListener("click", async () => {
    if (element.dataset.armed !== "yes") {
      element.dataset.armed = "yes";
      element.textContent = `Confirm ${text.toLowerCase()}`;
      return;
    }
    element.disabled = true;
    await action();
  });
  element.addEventListener("blur", () => {
    element.dataset.armed = "";
    element.textContent = text;
  });
  return element;
}

// Copies a shown-once secret from its field, falling back to selecting it.
export async function copyField(field, status) {
  try {
    await navigator.clipboard.writeText(field.value);
    status.textContent = "Copied to the clipboard.";
  } catch {
    field.focus();
    field.select();
    const copied = document.execCommand("copy");
    status.textContent = copied ? "Copied to the clipboard." : "Press Ctrl+C to copy the selected text.";
  }
}

// How a session was opened and where from, for its row.
export function describeSession(session) {
  const how = document.createElement("span");
  how.textContent =
    session.provider === "token" ? `Token “${session.tokenName ?? "(deleted)"}”` : "Password login";
  const parts = [how];
  if (session.current) {
    const mark = document.createElement("span");
    mark.className = "badge current";
    mark.textContent = "this browser";
    parts.push(" ", mark);
  }
  return parts;
}

export function sessionOrigin(session) {
  const where = document.createElement("span");
  where.textContent = session.address ?? "unknown address";
  const parts = [where];
  if (session.userAgent) {
    const agent = document.createElement("small");
    agent.className = "muted agent";
    agent.textContent = session.userAgent;
    agent.title = session.userAgent;
    parts.push(agent);
  }
  return parts;
}

export const SESSION_COLUMNS = ["Session", "From", "Opened", "Last seen", "Actions"];
export const SESSION_FIELDS = "id current provider tokenName address userAgent createTime lastSeenTime";

// Rows for a list of sessions, each with `action(session)` in its last cell.
export function sessionRows(sessions, action) {
  return sessions.map((session) =>
    tableRow(SESSION_COLUMNS, [
      describeSession(session),
      sessionOrigin(session),
      timeElement(session.createTime),
      timeElement(session.lastSeenTime),
      action(session),
    ]),
  );
}

// A password of 20 letters and digits (none that look alike) from the browser's random source.
export function generatePassword() {
  const alphabet = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
  const limit = 256 - (256 % alphabet.length);
  let out = "";
  while (out.length < 20) {
    const bytes = crypto.getRandomValues(new Uint8Array(32));
    for (const b of bytes) {
      if (b < limit && out.length < 20) out += alphabet[b % alphabet.length];
    }
  }
  return out;
}
