// Shared by the profile page and the console: one small client for /api/gql.

export class ApiError extends Error {
  constructor(error) {
    super(error.message || "request failed");
    this.code = error.extensions?.webErrorCode ?? null;
  }
}

// Runs one operation with the session cookie; throws ApiError on the first error.
export async function gql(query, variables = {}) {
  const body = await send({ query, variables });
  if (body.errors && body.errors.length) {
    throw new ApiError(body.errors[0]);
  }
  return body.data;
}

// Sends a request and returns the whole JSON answer, errors included.
export async function send(request) {
  let response;
  try {
    response = await fetch("/api/gql", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(request),
    });
  } catch {
    throw new ApiError({ message: "the server cannot be reached" });
  }
  try {
    return await response.json();
  } catch {
    throw new ApiError({ message: `the server answered ${response.status}` });
  }
}

export function $(id) {
  return document.getElementById(id);
}
