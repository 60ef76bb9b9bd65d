// The profile page: log in, then the person's API tokens, sessions and password, and for
// administrators the team's users and the audit log.
import { $, gql } from "/static/common.js";
import { loadAudit } from "/static/audit.js";
import { loadSessions } from "/static/sessions.js";
import {
  accessBadges, button, call, copyField, report, tableRow, timeElement, tokenExpiry, tokenLastUse,
  whenSessionLost,
} from "/static/ui.js";
import { loadUsers, setAdministrator } from "/static/users.js";

const LIST = `{
  tokenApiList { tokenName createTime expireTime lastUsedTime lastUsedAddress scopes services allowFrom expiresSoon graceExpireTime }
  tokenApiPolicy { adminsOnly canCreate maxPerUser allowNever defaultLifetime }
}`;
const TOKEN_COLUMNS = ["Name", "Access", "Created", "Expires", "Last used", "Actions"];
const LIFETIMES = { DAY: "1 day", WEEK: "1 week", MONTH: "1 month", YEAR: "1 year", NEVER: "never" };

let policy = null;
let deleting = null;
let signedIn = false;

function showView(view) {
  signedIn = view === "profile";
  $("loading").hidden = true;
  $("login-view").hidden = view !== "login";
  $("profile-view").hidden = view !== "profile";
  $("who").hidden = view !== "profile";
}

function showLogin(message = "") {
  showView("login");
  $("login-error").textContent = message;
  $("login-user").focus();
}

// A session that ends while the page is open (logged out elsewhere, ended by an administrator,
// expired): whatever dialog is open closes with it, and the login form says why.
function sessionLost() {
  if (!signedIn) return;
  signedIn = false;
  for (const dialog of document.querySelectorAll("dialog[open]")) dialog.close();
  showLogin("Your session has ended. Log in again.");
}

whenSessionLost(sessionLost);

async function start() {
  try {
    const data = await gql("{ activeUser { userId displayName authRole } }");
    if (data.activeUser) {
      await enterProfile(data.activeUser);
    } else {
      showLogin();
    }
  } catch (error) {
    showLogin(error.message);
  }
}

async function enterProfile(user) {
  const admin = user.authRole === "admin";
  $("who-name").textContent = user.displayName || user.userId;
  $("who-role").textContent = admin ? "administrator" : "user";
  $("tab-users").hidden = !admin;
  $("tab-audit").hidden = !admin;
  setAdministrator(admin ? user.userId : null);
  showView("profile");
  selectTab($("tab-tokens"), false);
  await loadTokens();
}

async function loadTokens() {
  try {
    const data = await call(LIST);
    policy = data.tokenApiPolicy;
    renderTokens(data.tokenApiList);
    renderPolicy(data.tokenApiList);
    $("tokens-error").textContent = "";
  } catch (error) {
    report(error, $("tokens-error"));
  }
}

// The rule before the form: how many tokens count (expired ones do not) and whether one more
// may be added, and why not.
function renderPolicy(tokens) {
  const add = $("add-token");
  const now = Date.now();
  const live = tokens.filter((t) => !t.expireTime || new Date(t.expireTime).getTime() > now).length;
  const expired = tokens.length - live;
  const full = live >= policy.maxPerUser;
  add.disabled = !policy.canCreate || full;
  let text;
  if (!policy.canCreate) {
    text = "Only administrators can create API tokens on this server. Ask an administrator if you need one.";
  } else if (full) {
    text = `You hold ${live} of ${policy.maxPerUser} tokens, the most allowed: delete one to add another.`;
  } else {
    text = `Tokens let scripts log in as you. You hold ${live} of at most ${policy.maxPerUser}.`;
  }
  if (expired > 0) text += ` Expired tokens (${expired}) do not count.`;
  $("token-policy").textContent = text;
}

// "in 3 days", "in 5 hours": how long until `text`, roughly.
function inTime(text) {
  const hours = Math.max(0, (new Date(text).getTime() - Date.now()) / 3_600_000);
  if (hours >= 48) return `in ${Math.floor(hours / 24)} days`;
  if (hours >= 2) return `in ${Math.floor(hours)} hours`;
  return "within the hour";
}

function renderTokens(tokens) {
  const soon = tokens.filter((t) => t.expiresSoon);
  const banner = $("expiry-banner");
  banner.hidden = soon.length === 0;
  banner.textContent =
    soon.length === 1
      ? `Your token “${soon[0].tokenName}” expires ${inTime(soon[0].expireTime)}: replace it before then.`
      : `${soon.length} of your tokens expire soon: ${soon.map((t) => `“${t.tokenName}” ${inTime(t.expireTime)}`).join(", ")}.`;
  $("token-rows").replaceChildren(
    ...tokens.map((token) => {
      let { expires, expired } = tokenExpiry(token);
      if (token.expiresSoon) {
        const mark = document.createElement("span");
        mark.className = "soon";
        mark.textContent = ` (expires ${inTime(token.expireTime)})`;
        expires = [...expires, mark];
      }
      if (token.graceExpireTime) {
        const previous = document.createElement("small");
        previous.className = "muted agent";
        previous.append("previous secret valid until ", timeElement(token.graceExpireTime));
        expires = [...(Array.isArray(expires) ? expires : [expires]), previous];
      }
      const remove = document.createElement("span");
      remove.className = "buttons";
      remove.append(
        button("Rotate", {
          label: `Rotate token ${token.tokenName}`,
          onClick: () => askRotate(token.tokenName),
        }),
        button("Delete", {
          label: `Delete token ${token.tokenName}`,
          className: "delete",
          onClick: () => askDelete(token.tokenName),
        }),
      );
      const row = tableRow(TOKEN_COLUMNS, [
        token.tokenName,
        accessBadges(token),
        timeElement(token.createTime),
        expires,
        tokenLastUse(token),
        remove,
      ]);
      if (expired) row.classList.add("expired");
      return row;
    }),
  );
  $("tokens").hidden = tokens.length === 0;
  $("tokens-empty").hidden = tokens.length !== 0;
}

function openAdd() {
  $("add-form").reset();
  $("add-form").hidden = false;
  $("add-result").hidden = true;
  $("add-error").textContent = "";
  $("copy-status").textContent = "";
  $("never-option").hidden = !policy.allowNever;
  const choice = document.querySelector(`input[name=lifetime][value=${policy.defaultLifetime}]`);
  if (choice) choice.checked = true;
  $("access").open = false;
  $("services-error").textContent = "";
  $("allow-from-error").textContent = "";
  describeAccess();
  $("add-dialog").showModal();
  $("token-name").focus();
}

function lines(id) {
  return $(id)
    .value.split("\n")
    .map((line) => line.trim())
    .filter(Boolean);
}

// What the Access section asks for: scopes, services, addresses; `null` where it is the default.
function accessChosen() {
  const api = document.querySelector("input[name=api-access]:checked").value;
  const proxy = document.querySelector("input[name=proxy-access]:checked").value;
  const scopes = [api, proxy].filter(Boolean);
  return {
    scopes: scopes.join() === "api,proxy" ? null : scopes,
    services: lines("token-services"),
    allowFrom: lines("token-allow-from"),
  };
}

// The same rules the server applies, checked as typed so that a mistake shows at once.
const SERVICE = /^(\*\.)?[A-Za-z0-9.\-:\[\]]+(\/[^\s?#]*)?$/;
const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(\/(\d{1,2}))?$/;
const IPV6 = /^[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(\/(\d{1,3}))?$/;

function badService(line) {
  if (line.includes("://")) return `${line}: leave out the scheme (https://)`;
  if (!SERVICE.test(line)) return `${line}: give a host with an optional path, such as grafana.example.com or ci.example.com/api/`;
  return null;
}

function badAddress(line) {
  const v4 = IPV4.exec(line);
  if (v4) {
    const parts = v4.slice(1, 5).map(Number);
    const prefix = v4[6] === undefined ? 32 : Number(v4[6]);
    if (parts.every((p) => p <= 255) && prefix <= 32) return null;
  } else {
    const v6 = IPV6.exec(line);
    if (v6 && (v6[2] === undefined || Number(v6[2]) <= 128)) return null;
  }
  return `${line}: not an address or a range such as 10.0.0.0/8 or 2001:db8::/32`;
}

function checkAccess() {
  const services = lines("token-services").map(badService).filter(Boolean);
  const addresses = lines("token-allow-from").map(badAddress).filter(Boolean);
  $("services-error").textContent = services.join(" · ");
  $("allow-from-error").textContent = addresses.join(" · ");
  return services.length === 0 && addresses.length === 0;
}

function describeAccess() {
  const { scopes, services, allowFrom } = accessChosen();
  const parts = [];
  parts.push(scopes ? (scopes.length ? scopes.join(", ") : "nothing") : "everything");
  if (services.length) parts.push(`${services.length} service${services.length > 1 ? "s" : ""}`);
  parts.push(allowFrom.length ? `from ${allowFrom.join(", ")}` : "from anywhere");
  $("access-summary").textContent = `(${parts.join(", ")})`;
}

async function createToken(event) {
  event.preventDefault();
  const name = $("token-name").value.trim();
  if (!name) {
    $("add-error").textContent = "Give the token a name.";
    $("token-name").focus();
    return;
  }
  const lifetime = document.querySelector("input[name=lifetime]:checked")?.value ?? policy.defaultLifetime;
  if (!checkAccess()) {
    $("access").open = true;
    $("add-error").textContent = "Correct the services or addresses first.";
    return;
  }
  const access = accessChosen();
  if (access.scopes && access.scopes.length === 0) {
    $("access").open = true;
    $("add-error").textContent = "A token needs the API or the proxy: choose at least one.";
    return;
  }
  $("add-submit").disabled = true;
  try {
    const data = await call(
      `mutation($name: String!, $lifetime: TokenLifetime, $scopes: [String!], $services: [String!], $allowFrom: [String!]) {
        tokenApiCreate(tokenName: $name, lifetime: $lifetime, scopes: $scopes, services: $services, allowFrom: $allowFrom) { tokenName token expireTime }
      }`,
      { name, lifetime, ...access },
    );
    const created = data.tokenApiCreate;
    $("add-form").hidden = true;
    $("add-result").hidden = false;
    $("new-token-name").textContent = `“${created.tokenName}”`;
    const expiry = $("new-token-expiry");
    if (created.expireTime) {
      expiry.replaceChildren(`Expires ${LIFETIMES[lifetime] ? `in ${LIFETIMES[lifetime]}, ` : ""}on `, timeElement(created.expireTime), ".");
    } else {
      expiry.textContent = "Never expires: delete it when it is no longer needed.";
    }
    const field = $("new-token");
    field.value = created.token;
    field.focus();
    field.select();
  } catch (error) {
    report(error, $("add-error"));
  } finally {
    $("add-submit").disabled = false;
  }
}

// Whatever closes the dialog (Done, Cancel, Escape), the secret leaves the page.
function addClosed() {
  $("new-token").value = "";
  $("add-result").hidden = true;
  $("add-form").hidden = false;
  if (!signedIn) return;
  loadTokens().then(focusTokens);
}

// Focus goes back to "+ Add", or to the tab when adding is not allowed.
function focusTokens() {
  const add = $("add-token");
  (add.disabled ? $("tab-tokens") : add).focus();
}

let rotating = null;

function askRotate(name) {
  rotating = name;
  $("rotate-form").reset();
  $("rotate-form").hidden = false;
  $("rotate-result").hidden = true;
  $("rotate-name").textContent = `“${name}”`;
  $("rotate-error").textContent = "";
  $("copy-rotated-status").textContent = "";
  $("rotate-dialog").showModal();
  document.querySelector("input[name=grace]:checked").focus();
}

const GRACES = { 0: null, 3600: "1 hour", 86400: "1 day", 604800: "1 week" };

async function confirmRotate(event) {
  event.preventDefault();
  const grace = Number(document.querySelector("input[name=grace]:checked").value);
  $("rotate-submit").disabled = true;
  try {
    const data = await call(
      "mutation($name: String!, $grace: Int) { tokenApiRotate(tokenName: $name, graceSeconds: $grace) { tokenName token expireTime } }",
      { name: rotating, grace },
    );
    $("rotate-form").hidden = true;
    $("rotate-result").hidden = false;
    $("rotated-name").textContent = `“${data.tokenApiRotate.tokenName}”`;
    // No lifetime was sent: the token keeps its own rule, and this is where it leads.
    const expiry = $("rotated-expiry");
    if (data.tokenApiRotate.expireTime) {
      expiry.replaceChildren("The new secret expires on ", timeElement(data.tokenApiRotate.expireTime), ".");
    } else {
      expiry.textContent = "The new secret never expires, as the old one did not.";
    }
    $("rotated-grace").textContent = GRACES[grace]
      ? `The old secret keeps working for ${GRACES[grace]}.`
      : "The old secret no longer works.";
    const field = $("rotated-token");
    field.value = data.tokenApiRotate.token;
    field.focus();
    field.select();
  } catch (error) {
    report(error, $("rotate-error"));
  } finally {
    $("rotate-submit").disabled = false;
  }
}

function askDelete(name) {
  deleting = name;
  $("delete-name").textContent = name;
  $("delete-error").textContent = "";
  $("delete-dialog").showModal();
  $("delete-cancel").focus();
}

async function confirmDelete() {
  try {
    await call("mutation($name: String!) { tokenApiDelete(tokenName: $name) }", { name: deleting });
    $("delete-dialog").close();
  } catch (error) {
    report(error, $("delete-error"));
  }
}

async function login(event) {
  event.preventDefault();
  const user = $("login-user").value.trim();
  const password = $("login-password").value;
  if (!user || !password) {
    $("login-error").textContent = "Enter your user and password.";
    return;
  }
  try {
    await gql(
      'query($c: Object) { authLogin(provider: "local", credentials: $c) { authStatus } }',
      { c: { user, password } },
    );
    $("login-password").value = "";
    $("login-error").textContent = "";
    if (await followReturnTo()) return;
    const data = await gql("{ activeUser { userId displayName authRole } }");
    await enterProfile(data.activeUser);
    focusTokens();
  } catch (error) {
    $("login-password").value = "";
    $("login-error").textContent =
      error.code === "authFailed" ? "Wrong user or password." : error.message;
  }
}

// After a login, `?return_to=` leads back to the service that sent the browser here, when the
// server allows its origin (forward_auth.return_origins).
async function followReturnTo() {
  const target = new URLSearchParams(location.search).get("return_to");
  if (!target) return false;
  const data = await gql("query($target: String!) { authReturnUrl(returnTo: $target) }", { target });
  if (!data.authReturnUrl) return false;
  location.assign(data.authReturnUrl);
  return true;
}

async function logout() {
  try {
    await gql("{ authLogout }");
  } finally {
    showLogin();
  }
}

async function changePassword(event) {
  event.preventDefault();
  const message = $("password-message");
  const next = $("new-password").value;
  if (next !== $("confirm-password").value) {
    message.textContent = "The new passwords differ.";
    return;
  }
  try {
    await call("query($old: String!, $new: String!) { authChangeLocalPassword(oldPassword: $old, newPassword: $new) }", {
      old: $("old-password").value,
      new: next,
    });
    $("password-form").reset();
    message.textContent = "Password changed.";
  } catch (error) {
    report(error, message);
  }
}

const LOADERS = {
  "tab-tokens": () => loadTokens(),
  "tab-sessions": () => loadSessions(),
  "tab-users": () => loadUsers(),
  "tab-audit": () => loadAudit(),
};

function visibleTabs() {
  return [...document.querySelectorAll("[role=tab]")].filter((tab) => !tab.hidden);
}

function selectTab(tab, load = true) {
  for (const other of document.querySelectorAll("[role=tab]")) {
    const selected = other === tab;
    other.setAttribute("aria-selected", String(selected));
    other.tabIndex = selected ? 0 : -1;
    $(other.getAttribute("aria-controls")).hidden = !selected;
  }
  if (load) {
    tab.focus();
    LOADERS[tab.id]?.();
  }
}

function tabKeys(event) {
  const tabs = visibleTabs();
  const at = tabs.indexOf(event.target);
  let next = null;
  if (event.key === "ArrowRight") next = tabs[(at + 1) % tabs.length];
  if (event.key === "ArrowLeft") next = tabs[(at + tabs.length - 1) % tabs.length];
  if (event.key === "Home") next = tabs[0];
  if (event.key === "End") next = tabs[tabs.length - 1];
  if (next) {
    selectTab(next);
    event.preventDefault();
  }
}

// Back to the page after a while away: the open tab is read again, so a session ended
// meanwhile shows at once. (No timer: a page left open must not keep its session alive.)
function refresh() {
  if (!signedIn || document.visibilityState !== "visible") return;
  const open = document.querySelector("[role=tab][aria-selected=true]");
  if (open) LOADERS[open.id]?.();
}

$("login-form").addEventListener("submit", login);
$("logout").addEventListener("click", logout);
$("add-token").addEventListener("click", openAdd);
$("add-form").addEventListener("submit", createToken);
for (const input of document.querySelectorAll("#access input, #access textarea")) {
  input.addEventListener("input", () => {
    describeAccess();
    if (input.tagName === "TEXTAREA") checkAccess();
  });
}
$("add-cancel").addEventListener("click", () => $("add-dialog").close());
$("add-done").addEventListener("click", () => $("add-dialog").close());
$("add-dialog").addEventListener("close", addClosed);
$("copy-token").addEventListener("click", () => copyField($("new-token"), $("copy-status")));
$("rotate-form").addEventListener("submit", confirmRotate);
$("copy-rotated").addEventListener("click", () => copyField($("rotated-token"), $("copy-rotated-status")));
// Whatever closes it, the secret leaves the page.
$("rotate-dialog").addEventListener("close", () => {
  $("rotated-token").value = "";
  if (signedIn) loadTokens().then(focusTokens);
});
$("delete-cancel").addEventListener("click", () => $("delete-dialog").close());
$("delete-confirm").addEventListener("click", confirmDelete);
$("delete-dialog").addEventListener("close", () => {
  if (!signedIn) return;
  loadTokens().then(focusTokens);
});
$("password-form").addEventListener("submit", changePassword);
for (const tab of document.querySelectorAll("[role=tab]")) {
  tab.addEventListener("click", () => selectTab(tab));
  tab.addEventListener("keydown", tabKeys);
}

window.addEventListener("focus", refresh);
document.addEventListener("visibilitychange", refresh);

start();
