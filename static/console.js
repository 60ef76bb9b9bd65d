// The GraphQL console: GraphiQL (vendored, loaded before this file) on the page's session.
// Requests carry the session cookie; a token in the Headers tab
// ({"Authorization": "Bearer lodge_..."}) runs them as that token instead.

const LOGIN = `# The reference page's login with an API token. Put a token in Variables below and run
# (Ctrl+Enter, or the play button). It opens a session in this browser, as the profile page's
# login does. To run any query as a token without a session, put it in Headers instead:
#   {"Authorization": "Bearer lodge_..."}
query authLogin($credentials: Object) {
  authLogin(provider: "token", credentials: $credentials) {
    authId
    authStatus
    userTokens {
      userId
    }
  }
}
`;

const LOGIN_VARIABLES = `{
  "credentials": { "token": "lodge_..." }
}
`;

const TOKENS = `# Your API tokens, and a new one: tokenApiCreate answers the secret once, so it is
# selected here (token); copy it from the answer. Choose the operation to run with the button.
query tokens {
  tokenApiList {
    tokenName
    createTime
    expireTime
    expiresSoon
  }
}

mutation createToken($name: String!) {
  tokenApiCreate(tokenName: $name, lifetime: WEEK) {
    tokenName
    token
    expireTime
  }
}
`;

const TOKENS_VARIABLES = `{
  "name": "tried in the console"
}
`;

async function fetcher(params, options) {
  const response = await fetch("/api/gql", {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", ...(options?.headers ?? {}) },
    body: JSON.stringify(params),
  });
  const text = await response.text();
  try {
    return JSON.parse(text);
  } catch {
    return { errors: [{ message: `HTTP ${response.status}: ${text.trim()}` }] };
  }
}

// GraphiQL keeps every run in its history with the headers and variables it was sent with,
// and each tab's variables, even when told not to keep headers: a Bearer token typed in Headers,
// a password or a token typed in Variables would stay in the browser's storage. So its storage
// is this one, which keeps queries only: it drops headers and variables on the way in.
const storage = {
  getItem: (key) => localStorage.getItem(key),
  setItem(key, value) {
    if (key.endsWith(":variables") || key.endsWith(":headers")) {
      localStorage.removeItem(key);
      return;
    }
    const lists = { ":queries": "queries", ":favorites": "queries", ":tabState": "tabs" };
    const list = Object.entries(lists).find(([suffix]) => key.endsWith(suffix));
    if (list) {
      try {
        const kept = JSON.parse(value);
        for (const entry of kept[list[1]] ?? []) {
          delete entry.headers;
          delete entry.variables;
        }
        value = JSON.stringify(kept);
      } catch {
        return;
      }
    }
    localStorage.setItem(key, value);
  },
  removeItem: (key) => localStorage.removeItem(key),
  clear: () => localStorage.clear(),
  key: (index) => localStorage.key(index),
  get length() {
    return localStorage.length;
  },
};

function notice(text) {
  const element = document.getElementById("console-notice");
  element.textContent = text;
  element.hidden = false;
}

async function showWho() {
  const who = document.getElementById("console-who");
  try {
    const body = await fetcher({ query: "{ activeUser { userId } }" });
    const user = body.data?.activeUser;
    who.textContent = user
      ? `Requests run as ${user.userId}, with this page's session.`
      : "Not logged in: requests run anonymously (log in on the profile page, or run authLogin).";
  } catch (error) {
    who.textContent = `The server cannot be reached: ${error.message}`;
  }
}

function start() {
  const introspection =
    document.querySelector('meta[name="lodge-introspection"]').content === "on";
  if (!introspection) {
    notice(
      "This server hides its schema (graphql.introspection = false): no autocompletion, " +
        "checking or documentation here. Queries still run.",
    );
  }
  const plugins = [GraphiQLPluginExplorer.explorerPlugin()];
  const props = {
    fetcher,
    plugins,
    defaultTabs: [
      { query: LOGIN, variables: LOGIN_VARIABLES },
      { query: TOKENS, variables: TOKENS_VARIABLES },
    ],
    // What a new tab starts with.
    defaultQuery: "# A new tab. Ctrl+Space lists what may come next; Ctrl+Enter runs.\n",
    defaultEditorToolsVisibility: "variables",
    // A Bearer token typed in the Headers tab is not written to the browser's storage.
    shouldPersistHeaders: false,
    storage,
  };
  if (!introspection) props.schema = null;
  ReactDOM.createRoot(document.getElementById("graphiql")).render(
    React.createElement(GraphiQL, props),
  );
  showWho();
}

if (window.GraphiQL && window.React && window.ReactDOM && window.GraphiQLPluginExplorer) {
  start();
} else {
  notice("GraphiQL did not load: reload the page.");
}
