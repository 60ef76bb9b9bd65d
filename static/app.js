// The profile page: log in, then list, add and delete API tokens.
import { $, ApiError, gql } from "/static/common.js";

const LIST = `{
  tokenApiList { tokenName createTime expireTime lastUsedTime }
  tokenApiPolicy { adminsOnly canCreate maxPerUser allowNever defaultLifetime }
}`;

let policy = null;
let deleting = null;

function showView(view) {
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

// A failed call: a lost session sends the person back to the login form.
function failed(error, where) {
  if (error instanceof ApiError && ["sessionExpired", "authRequired"].includes(error.code)) {
    showLogin("Your session has ended. Log in again.");
    return;
  }
  $(where).textContent = error.message;
}

function when(text) {
  const date = new Date(text);
  return `${date.toISOString().slice(0, 16).replace("T", " ")} UTC`;
}

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
  $("who-name").textContent = user.displayName || user.userId;
  $("who-role").textContent = user.authRole === "admin" ? "administrator" : "user";
  showView("profile");
  await loadTokens();
}

async function loadTokens() {
  try {
    const data = await gql(LIST);
    policy = data.tokenApiPolicy;
    renderPolicy();
    renderTokens(data.tokenApiList);
    $("tokens-error").textContent = "";
  } catch (error) {
    failed(error, "tokens-error");
  }
}

function renderPolicy() {
  const add = $("add-token");
  add.disabled = !policy.canCreate;
  $("token-policy").textContent = policy.canCreate
    ? `Tokens let scripts log in as you. You can hold up to ${policy.maxPerUser}.`
    : "Only administrators can create API tokens on this server. Ask an administrator if you need one.";
}

function renderTokens(tokens) {
  const rows = $("token-rows");
  rows.replaceChildren();
  const now = Date.now();
  for (const token of tokens) {
    const row = document.createElement("tr");
    const cells = [token.tokenName, when(token.createTime)];
    if (!token.expireTime) {
      cells.push("never");
    } else if (new Date(token.expireTime).getTime() <= now) {
      cells.push(`${when(token.expireTime)} (expired)`);
      row.classList.add("expired");
    } else {
      cells.push(when(token.expireTime));
    }
    cells.push(token.lastUsedTime ? when(token.lastUsedTime) : "never");
    for (const text of cells) {
      const cell = document.createElement("td");
      cell.textContent = text;
      row.append(cell);
    }
    const action = document.createElement("td");
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "delete";
    remove.textContent = "Delete";
    remove.setAttribute("aria-label", `Delete token ${token.tokenName}`);
    remove.addEventListener("click", () => askDelete(token.tokenName));
    action.append(remove);
    row.append(action);
    rows.append(row);
  }
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
  $("add-dialog").showModal();
  $("token-name").focus();
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
  $("add-submit").disabled = true;
  try {
    const data = await gql(
      "mutation($name: String!, $lifetime: TokenLifetime) { tokenApiCreate(tokenName: $name, lifetime: $lifetime) { token } }",
      { name, lifetime },
    );
    $("add-form").hidden = true;
    $("add-result").hidden = false;
    const field = $("new-token");
    field.value = data.tokenApiCreate.token;
    field.focus();
    field.select();
  } catch (error) {
    failed(error, "add-error");
  } finally {
    $("add-submit").disabled = false;
  }
}

async function copyToken() {
  const field = $("new-token");
  try {
    await navigator.clipboard.writeText(field.value);
    $("copy-status").textContent = "Copied to the clipboard.";
  } catch {
    field.focus();
    field.select();
    const copied = document.execCommand("copy");
    $("copy-status").textContent = copied
      ? "Copied to the clipboard."
      : "Press Ctrl+C to copy the selected token.";
  }
}

// Whatever closes the dialog (Done, Cancel, Escape), the secret leaves the page.
function addClosed() {
  $("new-token").value = "";
  $("add-result").hidden = true;
  $("add-form").hidden = false;
  loadTokens();
  focusTokens();
}

// Focus goes back to "+ Add", or to the tab when adding is not allowed.
function focusTokens() {
  const add = $("add-token");
  (add.disabled ? $("tab-tokens") : add).focus();
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
    await gql("mutation($name: String!) { tokenApiDelete(tokenName: $name) }", { name: deleting });
    $("delete-dialog").close();
  } catch (error) {
    failed(error, "delete-error");
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
    await gql("query($old: String!, $new: String!) { authChangeLocalPassword(oldPassword: $old, newPassword: $new) }", {
      old: $("old-password").value,
      new: next,
    });
    $("password-form").reset();
    message.textContent = "Password changed.";
  } catch (error) {
    failed(error, "password-message");
  }
}

function selectTab(tab) {
  for (const other of document.querySelectorAll("[role=tab]")) {
    const selected = other === tab;
    other.setAttribute("aria-selected", String(selected));
    other.tabIndex = selected ? 0 : -1;
    $(other.getAttribute("aria-controls")).hidden = !selected;
  }
  tab.focus();
}

function tabKeys(event) {
  const tabs = [...document.querySelectorAll("[role=tab]")];
  const at = tabs.indexOf(event.target);
  if (event.key === "ArrowRight" || event.key === "ArrowLeft") {
    const step = event.key === "ArrowRight" ? 1 : tabs.length - 1;
    selectTab(tabs[(at + step) % tabs.length]);
    event.preventDefault();
  }
}

$("login-form").addEventListener("submit", login);
$("logout").addEventListener("click", logout);
$("add-token").addEventListener("click", openAdd);
$("add-form").addEventListener("submit", createToken);
$("add-cancel").addEventListener("click", () => $("add-dialog").close());
$("add-done").addEventListener("click", () => $("add-dialog").close());
$("add-dialog").addEventListener("close", addClosed);
$("copy-token").addEventListener("click", copyToken);
$("delete-cancel").addEventListener("click", () => $("delete-dialog").close());
$("delete-confirm").addEventListener("click", confirmDelete);
$("delete-dialog").addEventListener("close", () => {
  loadTokens();
  focusTokens();
});
$("password-form").addEventListener("submit", changePassword);
for (const tab of document.querySelectorAll("[role=tab]")) {
  tab.addEventListener("click", () => selectTab(tab));
  tab.addEventListener("keydown", tabKeys);
}

start();
