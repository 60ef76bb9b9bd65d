// The GraphQL console: an editor, variables, a run button, and the schema's operations.
import { $, send } from "/static/common.js";

const OPERATIONS = `{
  __schema {
    queryType { fields { name description args { name type { kind name ofType { kind name ofType { kind name } } } } } }
    mutationType { fields { name description args { name type { kind name ofType { kind name ofType { kind name } } } } } }
  }
}`;

function typeName(type) {
  if (type.kind === "NON_NULL") return `${typeName(type.ofType)}!`;
  if (type.kind === "LIST") return `[${typeName(type.ofType)}]`;
  return type.name;
}

// A starting point for an operation: its arguments as variables, __typename selected.
function template(kind, field) {
  const declared = field.args.map((a) => `$${a.name}: ${typeName(a.type)}`).join(", ");
  const passed = field.args.map((a) => `${a.name}: $${a.name}`).join(", ");
  const head = declared ? `${kind} (${declared})` : kind;
  const call = passed ? `${field.name}(${passed})` : field.name;
  return `${head} {\n  ${call} {\n    __typename\n  }\n}`;
}

function listOperations(kind, fields, listId) {
  const list = $(listId);
  list.replaceChildren();
  for (const field of [...fields].sort((a, b) => a.name.localeCompare(b.name))) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "link";
    button.textContent = field.name;
    if (field.description) button.title = field.description;
    button.addEventListener("click", () => {
      $("query").value = template(kind, field);
      $("variables").value = JSON.stringify(
        Object.fromEntries(field.args.map((a) => [a.name, null])),
        null,
        2,
      );
      $("query").focus();
    });
    item.append(button);
    list.append(item);
  }
}

async function loadOperations() {
  try {
    const body = await send({ query: OPERATIONS });
    if (body.errors) throw new Error(body.errors[0].message);
    const schema = body.data.__schema;
    listOperations("query", schema.queryType.fields, "query-ops");
    listOperations("mutation", schema.mutationType?.fields ?? [], "mutation-ops");
  } catch (error) {
    $("ops-error").textContent = `The operations cannot be listed: ${error.message}`;
  }
}

async function showWho() {
  try {
    const body = await send({ query: "{ activeUser { userId } }" });
    const user = body.data?.activeUser;
    $("console-who").textContent = user
      ? `Requests run as ${user.userId}.`
      : "Not logged in: requests run anonymously.";
  } catch (error) {
    $("console-who").textContent = error.message;
  }
}

async function run() {
  const result = $("result");
  let variables = {};
  const text = $("variables").value.trim();
  if (text) {
    try {
      variables = JSON.parse(text);
    } catch (error) {
      result.textContent = `The variables are not valid JSON: ${error.message}`;
      return;
    }
  }
  result.textContent = "Running…";
  try {
    const body = await send({ query: $("query").value, variables });
    result.textContent = JSON.stringify(body, null, 2);
  } catch (error) {
    result.textContent = error.message;
  }
  showWho();
}

$("run").addEventListener("click", run);
for (const id of ["query", "variables"]) {
  $(id).addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      run();
    }
  });
}

showWho();
loadOperations();
