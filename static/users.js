// The Users tab (administrators): everyone, with their tokens and sessions; add a user, reset a
// password, disable, promote, unlock, delete; find the token behind a leaked secret.
import { $ } from "/static/common.js";
import {
  SESSION_FIELDS, TOKEN_ACCESS_FIELDS, accessBadges, button, call, confirmingButton, copyField, generatePassword, report,
  sessionRows, tableRow, timeElement, tokenExpiry, tokenLastUse,
} from "/static/ui.js";

const COLUMNS = ["User", "Role", "State", "Last login", "Tokens", "Sessions", "Actions"];
const USER_FIELDS = "userId authRole enabled locked lastLoginTime tokenCount sessionCount";

let me = null;
let open = null;
let searchTimer = null;

// The administrator using the page, whose own account the page does not offer to disable.
export function setAdministrator(userId) {
  me = userId;
}

export async function loadUsers() {
  try {
    const mask = $("user-search").value.trim();
    const data = await call(
      `query($filter: AdminUserFilterInput!) { listUsers(page: {limit: 1000}, filter: $filter) { ${USER_FIELDS} } }`,
      { filter: { userIdMask: mask || null } },
    );
    const users = data.listUsers;
    $("user-rows").replaceChildren(
      ...users.map((user) =>
        tableRow(COLUMNS, [
          user.userId,
          user.authRole === "admin" ? "administrator" : "user",
          state(user),
          user.lastLoginTime ? timeElement(user.lastLoginTime) : "never",
          String(user.tokenCount),
          String(user.sessionCount),
          button("Manage", { label: `Manage ${user.userId}`, onClick: () => openUser(user.userId) }),
        ]),
      ),
    );
    $("users").hidden = users.length === 0;
    $("users-empty").hidden = users.length !== 0;
    $("users-error").textContent = "";
  } catch (error) {
    report(error, $("users-error"));
  }
}

function state(user) {
  const words = [user.enabled ? "enabled" : "disabled"];
  if (user.locked) words.push("locked");
  return words.join(", ");
}

// ---- Add a user -------------------------------------------------------------------------

function openAddUser() {
  $("user-add-form").reset();
  $("new-user-typed").hidden = true;
  $("user-add-error").textContent = "";
  $("user-add-dialog").showModal();
  $("new-user-id").focus();
}

function passwordChoice() {
  const typed = document.querySelector("input[name=new-user-password]:checked").value === "type";
  $("new-user-typed").hidden = !typed;
  if (typed) $("new-user-typed").focus();
}

async function addUser(event) {
  event.preventDefault();
  const userId = $("new-user-id").value.trim();
  const role = document.querySelector("input[name=new-user-role]:checked").value;
  const generate = document.querySelector("input[name=new-user-password]:checked").value === "generate";
  const password = generate ? generatePassword() : $("new-user-typed").value;
  if (!userId) {
    $("user-add-error").textContent = "Give the user an id.";
    $("new-user-id").focus();
    return;
  }
  if (password.length < 8) {
    $("user-add-error").textContent = "The password must have at least 8 characters.";
    $("new-user-typed").focus();
    return;
  }
  $("user-add-submit").disabled = true;
  try {
    await call(
      "query($id: ID!, $role: String) { createUser(userId: $id, enabled: true, authRole: $role) { userId } }",
      { id: userId, role },
    );
    try {
      await setPassword(userId, password);
    } catch (error) {
      // The user exists without a password: say so, and leave them to a reset.
      $("user-add-error").textContent = `${userId} was added, but the password was refused: ${error.message}. Set one with Manage → Reset password.`;
      await loadUsers();
      return;
    }
    $("user-add-dialog").close();
    await loadUsers();
    if (generate) showPassword(userId, password);
  } catch (error) {
    report(error, $("user-add-error"));
  } finally {
    $("user-add-submit").disabled = false;
  }
}

function setPassword(userId, password) {
  return call(
    'query($id: ID!, $password: String) { setUserCredentials(userId: $id, providerId: "local", credentials: {password: $password}) }',
    { id: userId, password },
  );
}

function showPassword(userId, password) {
  $("password-shown-user").textContent = userId;
  $("password-shown").value = password;
  $("copy-password-status").textContent = "";
  $("password-shown-dialog").showModal();
  $("password-shown").select();
}

// ---- One user ---------------------------------------------------------------------------

async function openUser(userId) {
  open = userId;
  $("user-name").textContent = userId;
  $("user-status").textContent = "";
  $("user-error").textContent = "";
  $("user-password").value = "";
  $("user-delete-confirm").value = "";
  $("user-delete").disabled = true;
  if (await loadUser()) {
    $("user-dialog").showModal();
    $("user-enable").focus();
  }
}

async function loadUser() {
  const userId = open;
  try {
    const data = await call(
      `query($id: ID!) {
        adminUserInfo(userId: $id) { ${USER_FIELDS} }
        adminTokenList(userId: $id) { tokenName createTime expireTime lastUsedTime lastUsedAddress ${TOKEN_ACCESS_FIELDS} }
        adminSessionList(userId: $id) { ${SESSION_FIELDS} }
      }`,
      { id: userId },
    );
    const user = data.adminUserInfo;
    const facts = [
      user.authRole === "admin" ? "administrator" : "user",
      state(user),
      `${user.tokenCount} live tokens`,
      `${user.sessionCount} sessions`,
    ];
    $("user-facts").textContent = facts.join(" · ");
    const self = userId === me;
    $("user-enable").textContent = user.enabled ? "Disable" : "Enable";
    $("user-enable").dataset.enabled = String(user.enabled);
    $("user-enable").disabled = self;
    $("user-role").textContent = user.authRole === "admin" ? "Make a user" : "Make an administrator";
    $("user-role").dataset.role = user.authRole === "admin" ? "user" : "admin";
    $("user-role").disabled = self;
    $("user-unlock").disabled = !user.locked;
    renderTokens(userId, data.adminTokenList);
    renderSessions(data.adminSessionList);
    return true;
  } catch (error) {
    report(error, $("users-error"));
    return false;
  }
}

function renderTokens(userId, tokens) {
  $("user-token-rows").replaceChildren(
    ...tokens.map((token) => {
      const { expires, expired } = tokenExpiry(token);
      const row = tableRow(["Name", "Access", "Expires", "Last used", "Actions"], [
        token.tokenName,
        accessBadges(token),
        expires,
        tokenLastUse(token),
        confirmingButton("Revoke", `Revoke token ${token.tokenName}`, () => revoke(userId, token.tokenName)),
      ]);
      if (expired) row.classList.add("expired");
      return row;
    }),
  );
  $("user-tokens-empty").hidden = tokens.length !== 0;
}

function renderSessions(sessions) {
  $("user-session-rows").replaceChildren(
    ...sessionRows(sessions, (session) =>
      confirmingButton("End", `End this session of ${open}`, () => endSession(session.id)),
    ),
  );
  $("user-sessions-empty").hidden = sessions.length !== 0;
}

async function act(done, query, variables) {
  $("user-error").textContent = "";
  try {
    await call(query, variables);
    $("user-status").textContent = done;
  } catch (error) {
    report(error, $("user-error"));
  }
  await loadUser();
  loadUsers();
}

function revoke(userId, tokenName) {
  return act(
    `Token “${tokenName}” revoked.`,
    "mutation($id: ID!, $name: String!) { adminTokenDelete(userId: $id, tokenName: $name) }",
    { id: userId, name: tokenName },
  );
}

function endSession(id) {
  return act("Session ended.", "mutation($id: ID!) { adminSessionEnd(id: $id) }", { id });
}

function toggleEnabled() {
  const enable = $("user-enable").dataset.enabled !== "true";
  return act(
    enable ? "Enabled." : "Disabled: their sessions ended and their tokens stopped working.",
    "query($id: ID!, $enabled: Boolean!) { enableUser(userId: $id, enabled: $enabled) }",
    { id: open, enabled: enable },
  );
}

function changeRole() {
  const role = $("user-role").dataset.role;
  return act(
    role === "admin" ? "Now an administrator." : "Now a user.",
    "query($id: ID!, $role: String) { setUserAuthRole(userId: $id, authRole: $role) }",
    { id: open, role },
  );
}

function unlock() {
  return act("Unlocked: they can log in at once.", "query($id: ID!) { adminUnlockUser(userId: $id) }", {
    id: open,
  });
}

async function resetPassword(event) {
  event.preventDefault();
  const typed = $("user-password").value;
  const password = typed || generatePassword();
  if (password.length < 8) {
    $("user-error").textContent = "The password must have at least 8 characters.";
    return;
  }
  $("user-error").textContent = "";
  try {
    await setPassword(open, password);
    $("user-password").value = "";
    $("user-status").textContent = "Password reset: their sessions ended and a lock, if any, is lifted.";
    await loadUser();
    if (!typed) showPassword(open, password);
  } catch (error) {
    report(error, $("user-error"));
  }
}

async function deleteUser(event) {
  event.preventDefault();
  if ($("user-delete-confirm").value.trim() !== open) return;
  try {
    await call("query($id: ID!) { deleteUser(userId: $id) }", { id: open });
    $("user-dialog").close();
    $("users-error").textContent = "";
    await loadUsers();
  } catch (error) {
    report(error, $("user-error"));
  }
}

// ---- Find a token -----------------------------------------------------------------------

let found = null;

function openFind() {
  $("find-form").reset();
  $("find-error").textContent = "";
  $("find-result").hidden = true;
  found = null;
  $("find-dialog").showModal();
  $("find-secret").focus();
}

async function find(event) {
  event.preventDefault();
  const token = $("find-secret").value.trim();
  $("find-result").hidden = true;
  $("find-error").textContent = "";
  if (!token) {
    $("find-error").textContent = "Paste a token first.";
    return;
  }
  try {
    const data = await call(
      "query($token: String!) { adminTokenLookup(token: $token) { userId tokenName expireTime lastUsedTime lastUsedAddress } }",
      { token },
    );
    found = data.adminTokenLookup;
    if (!found) {
      $("find-error").textContent = "No live token has this secret: it is unknown, deleted or expired.";
      return;
    }
    const used = found.lastUsedTime
      ? `last used ${new Date(found.lastUsedTime).toLocaleString()}${found.lastUsedAddress ? ` from ${found.lastUsedAddress}` : ""}`
      : "never used";
    $("find-answer").textContent = `This is the token “${found.tokenName}” of ${found.userId}, ${used}.`;
    $("find-revoke").disabled = false;
    $("find-result").hidden = false;
    $("find-revoke").focus();
  } catch (error) {
    report(error, $("find-error"));
  }
}

async function revokeFound() {
  try {
    await call("mutation($id: ID!, $name: String!) { adminTokenDelete(userId: $id, tokenName: $name) }", {
      id: found.userId,
      name: found.tokenName,
    });
    $("find-answer").textContent = `Revoked the token “${found.tokenName}” of ${found.userId}: it stops working at once.`;
    $("find-revoke").disabled = true;
    loadUsers();
  } catch (error) {
    report(error, $("find-error"));
  }
}

$("add-user").addEventListener("click", openAddUser);
$("user-add-form").addEventListener("submit", addUser);
for (const radio of document.querySelectorAll("input[name=new-user-password]")) {
  radio.addEventListener("change", passwordChoice);
}
$("copy-password").addEventListener("click", () => copyField($("password-shown"), $("copy-password-status")));
$("password-shown-dialog").addEventListener("close", () => {
  $("password-shown").value = "";
});
$("user-enable").addEventListener("click", toggleEnabled);
$("user-role").addEventListener("click", changeRole);
$("user-unlock").addEventListener("click", unlock);
$("user-password-form").addEventListener("submit", resetPassword);
$("user-delete-confirm").addEventListener("input", () => {
  $("user-delete").disabled = $("user-delete-confirm").value.trim() !== open;
});
$("user-delete-form").addEventListener("submit", deleteUser);
$("find-token").addEventListener("click", openFind);
$("find-form").addEventListener("submit", find);
$("find-revoke").addEventListener("click", revokeFound);
$("user-search").addEventListener("input", () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(loadUsers, 200);
});
for (const close of document.querySelectorAll("dialog .close")) {
  close.addEventListener("click", () => close.closest("dialog").close());
}
